"""The ledger's statistics (results/stats.py) on simulated claims with a known Δ, and against scipy/statsmodels."""
import math

import numpy as np
import pytest
from scipy import stats as st

from results import stats as S


def simulate(rng, delta, n, N, seed_h, w, keep):
    """z[seed, image] of one claim: two arms' correct bits on a test set of N images drawn fresh from a population
    whose true Δ = E[p_a − p_b] = delta exactly. Each image has a base difficulty (shared by both arms) and an
    arm-specific shift ±g (images one method gets right and the other not: the test-set noise of the paired
    difference); each seed shifts each arm by c (seed noise); a correct bit is drawn with one uniform per image,
    redrawn per seed with probability 1 − keep (a model's errors repeat across seeds on the same images)."""
    b = rng.uniform(0.25, 0.75, N)
    g = rng.uniform(-w, w, N)
    c = rng.uniform(-seed_h, seed_h, (2, n))
    pa = b + delta / 2 + g + c[0][:, None]
    pb = b - delta / 2 - g + c[1][:, None]
    u = np.where(rng.random((n, N)) < keep, rng.random(N)[None, :], rng.random((n, N)))
    return (u < pa).astype(float) - (u < pb).astype(float)


# (seeds, images, seed noise, image×arm noise, keep). The first two as the re-run's Table 3 val (20,000 images; its
# estimated components, in points²: σ²_seed 0.35, σ²_image 160, σ²_error 750 — the seed × image interaction
# dominates), at its 10 seeds and at the 3 seeds Tables 4 and 8 have; the interaction heavier still at n = 3 (where
# the split before 2026-12-06 covered 91%); seed noise dominating; a mid-size test set at n = 5.
REGIMES = [(10, 20000, 0.0072, 0.09, 0.3), (3, 20000, 0.0072, 0.09, 0.3), (3, 2000, 0.01, 0.05, 0.3),
           (3, 1500, 0.03, 0.1, 0.8), (5, 4000, 0.01, 0.2, 0.9)]
# The image effects dominate at n = 3 (errors repeat across seeds, keep 0.9): the interval errs conservative there.
TEST_NOISE_DOMINATED = (3, 1500, 0.01, 0.2, 0.9)


def _coverage(regime, runs=1000, seed=20261206, delta=0.02):
    """(coverage of the ledger's 95% interval, coverage of the old ledger's mean ± 2·SE of the seed differences)."""
    rng = np.random.default_rng(seed)
    covered = two_se = 0
    for _ in range(runs):
        z = simulate(rng, delta, *regime)
        iv = S.two_way_interval(z)
        covered += iv.lo <= delta <= iv.hi
        d = z.mean(axis=1)
        two_se += abs(d.mean() - delta) <= 2 * d.std(ddof=1) / math.sqrt(d.size)
    return covered / runs, two_se / runs


@pytest.mark.parametrize("regime", REGIMES)
def test_the_95_interval_covers_the_true_delta_in_93_to_97_percent(regime):
    covered, two_se = _coverage(regime)
    assert 0.93 <= covered <= 0.97, covered
    # the 2·SE rule (a critical value of 2 whatever n, and no test-set noise) covers far less
    assert two_se < 0.90, two_se


def test_where_image_effects_dominate_the_interval_errs_conservative():
    covered, two_se = _coverage(TEST_NOISE_DOMINATED)
    assert 0.95 <= covered <= 0.985, covered
    assert two_se < 0.60, two_se


def test_the_split_before_the_revision_undercovers_where_the_interaction_dominates():
    """Why the seed part is MS_seed / (n N): the split before 2026-12-06, (MS_seed − MS_error)⁺ / (n N) at t(n − 1)
    and the rest at the normal quantile, covers clearly under 95% at n = 3 in the interaction-heavy regime."""
    rng = np.random.default_rng(20261206)
    covered, runs = 0, 1000
    for _ in range(runs):
        z = simulate(rng, 0.02, *REGIMES[2])
        grand, ms_s, ms_i, ms_e, n, N = S.anova_components(z)
        old = S.Interval(grand, max(ms_s - ms_e, 0.0) / (n * N), (max(ms_i - ms_e, 0.0) + ms_e) / (n * N), n, N)
        covered += old.lo <= 0.02 <= old.hi
    assert covered / runs < 0.93


def test_satterthwaites_pooled_df_undercovers_where_seed_noise_is_large():
    """Why Interval.half_width takes each part at its own quantile: the textbook Satterthwaite interval covers
    clearly under 95% in the seed-dominated regime at n = 3."""
    rng = np.random.default_rng(7)
    covered, runs = 0, 1000
    for _ in range(runs):
        z = simulate(rng, 0.02, *REGIMES[3])
        grand, ms_s, ms_i, ms_e, n, N = S.anova_components(z)
        terms = [(ms_s / (n * N), n - 1), (ms_i / (n * N), N - 1), (-ms_e / (n * N), (n - 1) * (N - 1))]
        var = sum(v for v, _ in terms)
        df = var ** 2 / sum(v * v / d for v, d in terms)
        covered += abs(grand - 0.02) <= st.t.ppf(0.975, df) * math.sqrt(var)
    assert covered / runs < 0.94


def test_mean_squares_equal_statsmodels_two_way_anova():
    pd = pytest.importorskip("pandas")
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm
    rng = np.random.default_rng(1)
    z = simulate(rng, 0.05, 3, 25, 0.05, 0.2, 0.7)
    df = pd.DataFrame([(s, i, z[s, i]) for s in range(3) for i in range(25)], columns=["seed", "image", "z"])
    table = anova_lm(ols("z ~ C(seed) + C(image)", df).fit())
    ms = table["sum_sq"] / table["df"]
    grand, ms_s, ms_i, ms_e, n, N = S.anova_components(z)
    assert grand == pytest.approx(z.mean())
    assert (ms_s, ms_i, ms_e) == pytest.approx((ms["C(seed)"], ms["C(image)"], ms["Residual"]))


def test_without_test_noise_the_interval_is_the_paired_t_test():
    d = np.array([1.2, 2.9, 2.1])
    iv = S.seed_interval(d)
    lo, hi = st.t.interval(0.95, 2, loc=d.mean(), scale=st.sem(d))
    assert (iv.lo, iv.hi) == pytest.approx((lo, hi))
    assert iv.p_two_sided() == pytest.approx(st.ttest_1samp(d, 0).pvalue)
    assert iv.df == pytest.approx(2)


def test_tost_equals_statsmodels_on_seed_differences():
    from statsmodels.stats.weightstats import ttost_paired
    a, b = np.array([55.1, 54.3, 56.0, 55.5]), np.array([54.9, 54.6, 55.4, 55.6])
    iv = S.seed_interval(a - b)
    assert iv.p_tost(1.0) == pytest.approx(ttost_paired(a, b, -1.0, 1.0)[0])


def test_p_below_alpha_exactly_when_the_95_interval_excludes_zero():
    rng = np.random.default_rng(3)
    for _ in range(50):
        iv = S.Interval(rng.normal(1, 1), rng.uniform(0.01, 1), rng.uniform(0, 1), 3, int(rng.integers(0, 3000)))
        assert (iv.p_two_sided() < 0.05) == (iv.lo > 0 or iv.hi < 0)


@pytest.mark.parametrize("mean, seed_var, test_var, sign, verdict", [
    (2.0, 0.04, 0.04, +1, "holds"), (-2.0, 0.04, 0.04, +1, "opposite"), (0.3, 0.04, 0.04, +1, "inconclusive"),
    (-2.0, 0.04, 0.04, -1, "holds"), (2.0, 0.04, 0.04, -1, "opposite")])
def test_directional_verdicts(mean, seed_var, test_var, sign, verdict):
    assert S.directional(S.Interval(mean, seed_var, test_var, 3, 10000), sign) == verdict


@pytest.mark.parametrize("mean, se2, verdict", [(0.1, 0.01, "equivalent"), (0.1, 0.5, "inconclusive"),
                                                (3.0, 0.05, "differs"), (-3.0, 0.05, "differs"),
                                                (0.9, 0.05, "inconclusive")])
def test_equivalence_verdicts_at_a_one_point_margin(mean, se2, verdict):
    iv = S.Interval(mean, se2 / 2, se2 / 2, 5, 10000)
    assert S.equivalence(iv, 1.0) == verdict
    assert (verdict == "equivalent") == (iv.p_tost(1.0) < 0.05)


def test_each_p_agrees_with_the_interval_verdict_it_stands_for():
    """p_two_sided at the 95% interval, p_tost at the 90% one, p_beyond at the 95% one: each p < 0.05 exactly when
    its verdict holds, so Holm flags the verdicts shown (a 'differs' row can survive Holm)."""
    rng = np.random.default_rng(11)
    for _ in range(1000):
        iv = S.Interval(rng.normal(0, 3), rng.uniform(0.01, 1), rng.uniform(0, 1), int(rng.integers(2, 11)),
                        int(rng.integers(0, 3000)))
        v = S.equivalence(iv, 2.0)
        assert (v == "equivalent") == (iv.p_tost(2.0) < 0.05)
        assert (v == "differs") == (iv.p_beyond(2.0) < 0.05)
        assert (S.directional(iv, +1) != "inconclusive") == (iv.p_two_sided() < 0.05)
    far = S.Interval(5.0, 0.1, 0.1, 3, 10000)
    assert S.equivalence(far, 2.0) == "differs" and far.p_beyond(2.0) < 0.01 and far.p_tost(2.0) > 0.99


def test_holm_is_statsmodels_step_down():
    assert S.holm([0.01, 0.04, 0.03, 0.2]) == [True, False, False, False]
    assert S.holm([0.001, 0.01, 0.015]) == [True, True, True]
    assert S.holm([]) == []


def test_power_grows_with_seeds_and_is_capped_by_the_test_set():
    assert S.power(1.0, 1.0, 0.0, 3) < S.power(1.0, 1.0, 0.0, 10) < S.power(1.0, 1.0, 0.0, 30)
    n = S.seeds_needed(1.0, 1.0, 0.0)
    assert S.power(1.0, 1.0, 0.0, n) >= 0.8 > S.power(1.0, 1.0, 0.0, n - 1)
    # a test-set sd of 0.5 points against a 1-point effect: no number of seeds reaches 80%
    assert S.seeds_needed(1.0, 1.0, 0.25, n_max=200) is None


def test_power_matches_simulation():
    """The planned power of a paired design (seed noise only) against the rate at which simulated 95% intervals
    exclude 0: within 4 points."""
    rng = np.random.default_rng(5)
    delta, sd, n, runs = 1.0, 1.5, 6, 2000
    hits = sum(S.directional(S.seed_interval(rng.normal(delta, sd, n)), +1) == "holds" for _ in range(runs))
    assert abs(hits / runs - S.power(delta, sd, 0.0, n)) < 0.04
