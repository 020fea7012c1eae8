"""The ledger's statistics: an interval for a paired difference that counts seed *and* test-set noise, the
verdicts read from it, the equivalence test, Holm within a family, and the power of a planned design.

The design every claim shares: n seeds, each training both arms (a, b), both evaluated on one fixed test set of N
images. z[s, i] = outcome of a minus outcome of b on image i at seed s (a correct bit minus a correct bit for an
accuracy). The claim's Δ is the mean of z over the population of seeds *and* of images the test set was drawn from
(Bouthillier et al. 2021: both are sources of variation; more seeds never shrink the second). z is a two-way
crossed random-effects layout without replication (seed effect, image effect, interaction + error), so

    Var(z̄) = σ²_seed / n + σ²_image / N + σ²_error / (n N) = (MS_seed + MS_image − MS_error) / (n N)

with the ANOVA mean squares (Searle, Casella & McCulloch 1992, "Variance Components", §4; the same estimator as
generalizability theory's G-study). It splits by what varies with the seed: the seed means z̄_s = z̄ + (seed effect)
+ (the seed × image interaction averaged over the N images) vary as (σ²_seed + σ²_error / N), estimated by
MS_seed / N on n − 1 df; the image effects, shared by every seed, add σ²_image / N, estimated by (MS_image −
MS_error)⁺ / (n N) (truncated at 0, the usual rule). The interval is z̄ ± √(t²(n − 1) · V̂_seed + t²(N − 1) ·
V̂_test), each part at its own t quantile; `Interval.half_width` says why (and why not Satterthwaite's (1946)
pooled df). Without per-image outcomes it is the paired t interval of the seed differences, optionally widened by a
test-set variance from the binomial (`seed_interval`). Quantiles and tests come from scipy; Holm from statsmodels.
docs/statistics.md states the method and its references; tests/test_stats.py proves its coverage on simulated
claims with a known Δ and checks the mean squares against statsmodels' ANOVA.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as st

ALPHA = 0.05  # two-sided level of every interval and test in the ledger


@dataclass(frozen=True)
class Interval:
    """An estimate of Δ and its variance in two parts: the seed part ((σ²_seed + σ²_error / N) / n, the variance of
    the mean of the per-seed differences, df = n − 1: what more seeds shrink) and the test-set part (σ²_image / N,
    the image effects every seed shares, df = N − 1: what only a larger or fresh test set shrinks). The interval at
    a level is mean ± √(t²_seed · seed_var + t²_test · test_var), each part at its own t quantile (see
    `half_width`)."""
    mean: float
    seed_var: float
    test_var: float
    n: int  # seeds
    n_images: int  # 0: the test-set part is not estimated from per-image outcomes (binomial, or absent)
    level: float = 1 - ALPHA

    @property
    def se(self) -> float:
        return math.sqrt(self.seed_var + self.test_var)

    @property
    def df_seed(self) -> float:
        return float(self.n - 1)

    @property
    def df_test(self) -> float:
        return float(self.n_images - 1) if self.n_images > 1 else math.inf

    @property
    def lo(self) -> float:
        return self.at(self.level)[0]

    @property
    def hi(self) -> float:
        return self.at(self.level)[1]

    def half_width(self, level: float) -> float:
        """√(t²(n − 1) · seed_var + t²(N − 1) · test_var) at two-sided `level`. The seed part is estimated by
        MS_seed alone, so its studentised error is exactly t(n − 1) under normality; the image part on N − 1 df
        is close to normal. Welch–Satterthwaite's pooled df (the textbook choice) under-covers at n = 3 when the
        seed part is large (91-93% for a 95% interval in tests/test_stats.py's simulation, the known small-df
        weakness of the approximation); each part at its own quantile covers 94-97% in the simulated regimes like
        the re-run's data, and errs conservative (to ~97.5%) where the test-set part dominates at n = 3."""
        q = 0.5 + level / 2
        t_seed = float(st.t.ppf(q, self.df_seed)) if self.seed_var > 0 else 0.0
        t_test = float(st.norm.ppf(q) if math.isinf(self.df_test) else st.t.ppf(q, self.df_test))
        return math.sqrt(t_seed ** 2 * self.seed_var + t_test ** 2 * self.test_var)

    def at(self, level: float) -> tuple[float, float]:
        h = self.half_width(level)
        return self.mean - h, self.mean + h

    @property
    def df(self) -> float:
        """The effective df at the 95% level (`df_at`): p_two_sided < 0.05 exactly when the 95% interval excludes 0."""
        return self.df_at(1 - ALPHA)

    def df_at(self, level: float) -> float:
        """The effective df at two-sided `level`: the t distribution whose quantile × se is the interval's
        half-width there, so that a p-value tested at 1 − level agrees with the interval at that level exactly
        (the 95% interval for the directional and 'differs' tests, the 90% one for TOST)."""
        if self.se == 0:
            return math.inf
        q = 0.5 + level / 2
        ratio = self.half_width(level) / self.se

        def gap(d: float) -> float:
            return float(st.t.ppf(q, d)) - ratio
        if gap(1e9) >= 0:  # the normal quantile already: the test-set part dominates
            return math.inf
        from scipy.optimize import brentq
        return float(brentq(gap, 1e-3, 1e9))

    def p_two_sided(self) -> float:
        """p of H0: Δ = 0 (the t statistic mean / se at the effective df)."""
        if self.se == 0:
            return 0.0 if self.mean != 0 else 1.0
        return float(2 * st.t.sf(abs(self.mean) / self.se, self.df))

    def p_tost(self, margin: float) -> float:
        """p of the two one-sided tests (Schuirmann 1987) of H0: |Δ| ≥ margin, each one-sided at α, so at the
        effective df of the 90% interval (p < 0.05 exactly when the 90% interval lies inside ±margin); small p
        means equivalent within ±margin."""
        if self.se == 0:
            return 0.0 if abs(self.mean) < margin else 1.0
        df = self.df_at(1 - 2 * ALPHA)
        lower = st.t.sf((self.mean + margin) / self.se, df)  # H0: Δ ≤ −margin
        upper = st.t.cdf((self.mean - margin) / self.se, df)  # H0: Δ ≥ +margin
        return float(max(lower, upper))

    def p_beyond(self, margin: float) -> float:
        """p of H0: |Δ| ≤ margin against a difference beyond the nearer margin (the 'differs' verdict: p < 0.05
        exactly when the 95% interval lies wholly beyond one margin), two-sided at the 95% effective df as that
        verdict reads the 95% interval."""
        if self.se == 0:
            return 0.0 if abs(self.mean) > margin else 1.0
        return float(min(1.0, 2 * st.t.sf((abs(self.mean) - margin) / self.se, self.df)))


def anova_components(z) -> tuple[float, float, float, float, float, float]:
    """(grand mean, MS_seed, MS_image, MS_error, n, N) of z[seed, image], the two-way layout without
    replication (tests/test_stats.py checks these against statsmodels' anova_lm)."""
    z = np.asarray(z, dtype=np.float64)
    n, N = z.shape
    grand = z.mean()
    seed_means, image_means = z.mean(axis=1), z.mean(axis=0)
    ms_s = N * np.sum((seed_means - grand) ** 2) / (n - 1)
    ms_i = n * np.sum((image_means - grand) ** 2) / (N - 1)
    resid = z - seed_means[:, None] - image_means[None, :] + grand
    ms_e = np.sum(resid ** 2) / ((n - 1) * (N - 1))
    return float(grand), float(ms_s), float(ms_i), float(ms_e), n, N


def two_way_interval(z, level: float = 1 - ALPHA) -> Interval:
    """The interval of mean(z) for z[seed, image] (n ≥ 2 seeds, N ≥ 2 images): Var(z̄) = (MS_seed + MS_image −
    MS_error) / (n N), split as the seed part MS_seed / (n N) (the variance of the mean of the per-seed
    differences) and the test-set part (MS_image − MS_error)⁺ / (n N) (σ²_image / N, truncated at 0).

    Until 2026-12-06 the split was (MS_seed − MS_error)⁺ / (n N) and the rest, which put σ²_error / (n N) (seed-level
    noise, on n − 1 df) at the test-set part's normal quantile: 91% coverage at n = 3 where the seed × image
    interaction dominates, as in the re-run's data (docs/statistics.md, "Revision")."""
    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2 or z.shape[0] < 2 or z.shape[1] < 2:
        raise ValueError(f"two_way_interval needs at least 2 seeds × 2 images, got shape {z.shape}")
    grand, ms_s, ms_i, ms_e, n, N = anova_components(z)
    seed_var = ms_s / (n * N)
    test_var = max(ms_i - ms_e, 0.0) / (n * N)
    return Interval(grand, seed_var, test_var, n, N, level)


def seed_interval(d, test_var: float = 0.0, level: float = 1 - ALPHA) -> Interval:
    """The paired t interval of per-seed differences d (n ≥ 2; scipy.stats.ttest_1samp on d gives the same t and
    p when test_var = 0), widened by a test-set variance of the mean `test_var` taken as known (normal quantile):
    the image part σ²_image / N, or a bound on it (the seed-level part of the test noise, σ²_error / N, is already
    in var(d))."""
    d = np.asarray(d, dtype=np.float64)
    if d.size < 2:
        raise ValueError("seed_interval needs at least 2 seeds")
    return Interval(float(d.mean()), float(d.var(ddof=1) / d.size), float(test_var), int(d.size), 0, level)


def binomial_test_var(p_a: float, p_b: float, n_images: int) -> float:
    """Test-set variance of a difference of two accuracies (fractions) on one set of n_images, taking the two
    models' correctness as uncorrelated: p_a(1 − p_a)/N + p_b(1 − p_b)/N. It bounds the whole per-image variance
    of one seed's difference, (σ²_image + σ²_error) / N, of which `seed_interval` needs only σ²_image / N; and the
    models' errors are positively correlated in practice (the same images are hard for both): so it over-states
    the test-set part twice over. The ledger uses it only where a record carries no per-image outcomes."""
    return (p_a * (1 - p_a) + p_b * (1 - p_b)) / max(int(n_images), 1)


def weighted_map(scores, targets, weights) -> np.ndarray:
    """mAP in % (classes with a positive; scikit-learn's tie-aware average precision, as multilabel_coco/metrics.py)
    of scores [N, C] against targets [N, C] under image weights [B, N] (bootstrap multiplicities): [B]. With unit
    weights it is the metric itself."""
    scores, targets = np.asarray(scores, dtype=np.float64), np.asarray(targets, dtype=bool)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    n_boot, aps = weights.shape[0], []
    for c in range(scores.shape[1]):
        if not targets[:, c].any():
            continue
        order = np.argsort(-scores[:, c], kind="stable")
        s, t = scores[order, c], targets[order, c]
        last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # the last index of each run of tied scores
        w = weights[:, order]
        tp, n = np.cumsum(w * t, axis=1)[:, last], np.cumsum(w, axis=1)[:, last]
        pos = tp[:, -1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = tp / pos
            precision = np.where(n > 0, tp / np.where(n > 0, n, 1), 0.0)
            aps.append(np.sum(np.diff(np.c_[np.zeros((n_boot, 1)), recall], axis=1) * precision, axis=1))
    with np.errstate(invalid="ignore"):
        return 100.0 * np.nanmean(np.stack(aps), axis=0)


def map_bootstrap_var(pairs: list, n_boot: int = 400, seed: int = 0) -> float:
    """Test-set variance of the seed-mean mAP difference: the images are resampled (the same draw for every seed and
    both arms: a paired bootstrap, Efron & Tibshirani 1993), each draw's mean over seeds of mAP_a − mAP_b, and their
    variance. `pairs`: [(scores_a, scores_b, targets)] per seed, all on one test set. Deterministic (`seed`). It
    estimates (σ²_image + σ²_error / n) / N, so beside var(d) / n (which holds σ²_error / (n N) already) it errs
    conservative by that term."""
    n = pairs[0][2].shape[0]
    w = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)
    d = np.mean([weighted_map(sa, t, w) - weighted_map(sb, t, w) for sa, sb, t in pairs], axis=0)
    return float(np.var(d, ddof=1))


# ---- verdicts --------------------------------------------------------------------------------------------------
def directional(iv: Interval, sign: int) -> str:
    """'holds' when the 95% interval lies on the paper's side of 0 (sign +1: a > b), 'opposite' on the other,
    'inconclusive' when it covers 0."""
    lo, hi = iv.lo, iv.hi
    if (lo > 0 and sign > 0) or (hi < 0 and sign < 0):
        return "holds"
    if (lo > 0 and sign < 0) or (hi < 0 and sign > 0):
        return "opposite"
    return "inconclusive"


def equivalence(iv: Interval, margin: float) -> str:
    """TOST at ALPHA: 'equivalent' when the 90% interval lies inside (−margin, +margin); 'differs' when the 95%
    interval lies wholly beyond one margin (a difference larger than the margin, beyond noise); else
    'inconclusive'."""
    lo90, hi90 = iv.at(1 - 2 * ALPHA)
    if -margin < lo90 and hi90 < margin:
        return "equivalent"
    lo, hi = iv.at(1 - ALPHA)
    if lo > margin or hi < -margin:
        return "differs"
    return "inconclusive"


def holm(pvalues: list[float], alpha: float = ALPHA) -> list[bool]:
    """Which p-values Holm's step-down procedure rejects at family-wise level alpha (statsmodels)."""
    if not pvalues:
        return []
    from statsmodels.stats.multitest import multipletests
    return [bool(r) for r in multipletests(pvalues, alpha=alpha, method="holm")[0]]


# ---- power of a planned design ---------------------------------------------------------------------------------
def power(delta: float, seed_sd: float, test_var: float, n: int, n_images: int = 0, alpha: float = ALPHA) -> float:
    """Probability that the level-(1 − alpha) interval of a claim with true Δ = delta lies on Δ's side of 0, with
    n seeds whose paired differences have sd `seed_sd` and a test-set variance of the mean `test_var` (fixed by
    the test set, not by n): the noncentral t at the interval's effective df and critical value."""
    if n < 2:
        return 0.0
    iv = Interval(abs(delta), seed_sd ** 2 / n, test_var, n, n_images, 1 - alpha)
    if iv.se == 0:
        return 1.0
    crit = iv.half_width(1 - alpha) / iv.se
    return float(st.nct.sf(crit, min(iv.df, 1e7), abs(delta) / iv.se))


def seeds_needed(delta: float, seed_sd: float, test_var: float, target: float = 0.8, n_images: int = 0,
                 alpha: float = ALPHA, n_max: int = 1000) -> int | None:
    """The smallest n ≥ 2 with power ≥ target, or None when n_max seeds do not reach it (the test-set part alone
    caps the power: only a larger test set helps)."""
    for n in range(2, n_max + 1):
        if power(delta, seed_sd, test_var, n, n_images, alpha) >= target:
            return n
    return None
