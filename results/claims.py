"""The claims ledger: each claim of the paper, the paper's Δ, ours from records, and a verdict from a 95% interval
that counts seed and test-set noise (results/stats.py; the method in docs/statistics.md).

A claim compares two table cells named `table/row/col` (the keys of results/tables.py): a − b, or a / b for a cost
ratio. Our cell values come from `results.render.compute`, so the ledger reads records exactly as the rendered
tables do (the latest final record per seed). Ours is paired by seed: per seed both cells have, d = a − b; the
ledger shows mean ± sample std of d and judges Δ by its interval (VERDICT_RULE): from the records' per-image
outcomes where they carry them (relabel/outcomes.py), so a verdict is re-judged from the records alone.

The paper's Δ is a literal in results/paper_claims.py, transcribed from ../shared/paper/tables.md with the table or
figure it comes from; tests/test_claims.py checks each one against results/tables.py's paper numbers where both cells
have one. A comparison two tables repeat (ReLabel − original on ImageNet val: Tables 2-6, Fig. 6) is one claim, listed once.
Margins, duplicates, untestable, computed and conditional claims, and the pooled families are fixed below, before
the runs (docs/statistics-plan.md). `make claims` (`python -m results.publish --claims`) writes
results/<scale>/claims.md and .csv (results/ledger.py formats them) from the committed records.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from relabel import outcomes as O
from relabel.evaluators import ACCURACY
from results import render, tables
from results import stats as S
from results.paper_claims import BEYOND, CLAIMS, KINDS, Claim  # noqa: F401 (the ledger's public names)


# ---- what a claim's mini test can and cannot say (fixed before the re-run: docs/statistics-plan.md) ----------
# The minimum effect of interest per paper table, in the claim's unit (top-1 / AP / mAP points; Fig. 5: a
# probability). Why 2 points: the paper's Δs are 0.4-2.6 points at ImageNet's 22.5% ResNet-50 error; the mini
# world's ResNet-50 error is about twice that (~45%, docs/mini-world.md), so the same relative error reduction is
# about twice as many points, and 2 points is the paper's typical Δ (~1) at mini. Smaller true effects may exist;
# at mini we do not try to resolve them. results/power.py sizes the seeds from it (docs/statistics-plan.md).
MIN_EFFECT = {"Table 2": 2.0, "Table 3": 2.0, "Table A1": 2.0, "Table 4": 2.0, "Table 5": 2.0, "Table 6": 2.0,
              "Fig. 4": 2.0, "Fig. 5": 0.05, "Fig. 6": 2.0, "Table 7": 2.0, "Table 8": 2.0, "Table 9": 2.0,
              "Table 10": 2.0, BEYOND: 2.0}
# The seeds plan (docs/statistics-plan.md, `python -m results.power` on the records of commit d943533, 343 records,
# sha256 1e71e2181bdd, before any record of the re-run): per paper table, (planned seeds, seeds needed for 80% power
# at MIN_EFFECT; None: more than 1,000). A table whose need exceeds its planned seeds is underpowered at mini.
PLAN: dict[str, tuple[int, int | None]] = {
    "Table 2": (7, 7), "Table 3": (10, 10), "Table A1": (10, 24), "Table 4": (3, 10), "Table 5": (4, 4),
    "Table 6": (7, 7), "Fig. 4": (6, 6), "Fig. 5": (6, 6), "Fig. 6": (4, 4), "Table 7": (4, 28),
    "Table 8": (3, None), "Table 9": (6, 6), "Table 10": (4, 4)}


def planned_seeds(table: str) -> int | None:
    """The seeds the plan gives the paper table or figure of make target `table` (e.g. 'table3' → 10); None for a
    target without claims (fig2)."""
    refs = {c.ref for c in CLAIMS if c.id.split("/")[0] == table and c.ref in PLAN}
    return max(PLAN[r][0] for r in refs) if refs else None


# Invariance claims (kind 'same'): equivalent when the 90% interval lies inside ±margin (TOST at α = 0.05). The
# margin is the table's minimum effect of interest (Lakens 2017: equivalence bounds at the smallest effect of
# interest): a storage format, label variant or teacher whose effect stays within it changes nothing we would call
# a gain at mini.
MARGINS: dict[str, float] = {c.id: MIN_EFFECT[c.ref] for c in CLAIMS if c.kind == "same"}
# Cells that repeat another claim's cells at mini (the same numbers, not new evidence): shown once, not counted.
DUPLICATES: dict[str, tuple[str, str]] = {
    **{f"table3/relabel-{b}/shankar": (f"table3/relabel-{b}/real", "= ReaL at mini: Shankar et al.'s labels are the "
                                       "mini world's true label sets, as ReaL's, so the two columns are equal")
       for b in ("original", "label_smoothing", "label_cleaning")}}
# Claims whose mini cells cannot vary (every model scores the same): not testable at mini, with the reason. Declared
# before the re-run (docs/statistics-plan.md), so they are not judged at mini whatever their records say.
NOT_TESTABLE: dict[str, str] = {
    f"table7/{r}/bgc": ("the challenge accuracy is 0 for every mini model (a foreground counts only if it is right "
                        "on all 200 backgrounds); table7's BG-gap column shows the background dependence instead")
    for r in ("relabel", "cutmix", "extra")}
# Claims whose value is computed from the recipe, not measured (no noise to judge against).
COMPUTED = {"fig6/cost-kd_b7", "fig6/cost-kd_b5"}
# Claims whose seeds leave a source of variation fixed: the verdict is conditional on it.
CONDITIONAL: dict[str, str] = {
    **{f"fig4/{c}": "conditional on one annotator per arm (each trained once, seed 0); the targets vary by seed"
       for c in ("default-w025", "w025-baseline", "w05-w025", "default-w05", "e6-e2", "default-e6")},
    **{c.id: "conditional on one pretrained checkpoint per backbone (every seed fine-tunes from it)"
       for c in CLAIMS if c.id.startswith("table10/")},
    **{c: "conditional on one crop store (its crops drawn once, seed 0; the seeds vary the order they are replayed "
          "in, the init and the jitter)" for c in ("fig6/fkd-relabel", "fig6/fkd-original")},
}
# Why a row's mini test means less than its verdict says (shown in the note column).
NOTES: dict[str, str] = {
    "fig4/w025-baseline": ("at mini the ×0.25-width annotator is not the weakest (see fig4.md for each annotator's "
                           "top-1): the 2-epoch one (e2) is, and fig4/e6-e2 and fig4.md show its target"),
}


@dataclass(frozen=True)
class Family:
    """A claim the paper makes in words over several cells, judged by a pooled analysis of its members."""
    id: str
    ref: str
    text: str
    members: tuple[str, ...]  # claim ids, each already signed the paper's way (kind 'more')


FAMILIES = (
    Family("table4/every-architecture", "Table 4", "ReLabel improves every architecture (pooled over ResNet-18/50/101, "
           "EfficientNet-B0-B3 and ReXNet)", ("table3/relabel-original/val",) + tuple(
               f"table4/{a}" for a in ("resnet18", "resnet101", "efficientnet_b0", "efficientnet_b1",
                                       "efficientnet_b2", "efficientnet_b3", "rexnet_100"))),
    Family("table3/every-set", "Table 3", "ReLabel beats the original labels on every evaluation set (pooled over "
           "val, ReaL and the three ImageNetV2 variants)", ("table3/relabel-original/val",
                                                            "table3/relabel-original/real", "table3/relabel-original/v2",
                                                            "tableA1/relabel-original/v2_mf",
                                                            "tableA1/relabel-original/v2_t07")),
    Family("table7/relabel-every-benchmark", "Table 7", "ReLabel is more robust than the original labels on every "
           "benchmark (pooled over FGSM, ImageNet-A and ImageNet-C)",
           ("table7/relabel/fgsm", "table7/relabel/imagenet_a", "table7/relabel/imagenet_c")),
)

DIRECTIONAL = ("holds", "opposite", "inconclusive")
INVARIANCE = ("equivalent", "differs", "inconclusive (invariance)")
OTHER = ("duplicate", "not testable at mini", "computed", "single seed", "not paired", "not run")
VERDICTS = DIRECTIONAL + INVARIANCE + OTHER
# how the summary line counts each verdict ('12 hold')
IN_SUMMARY = {"holds": "hold", "opposite": "opposite", "inconclusive": "inconclusive", "equivalent": "equivalent",
              "differs": "differ (invariance)", "inconclusive (invariance)": "inconclusive invariances",
              "duplicate": "duplicates (shown once)", "not testable at mini": "not testable at mini",
              "computed": "computed", "single seed": "single seed", "not paired": "not paired (no common seed)",
              "not run": "not run"}
VERDICT_RULE = (
    "**Verdict rule** (docs/statistics.md; fixed before the runs in docs/statistics-plan.md). Ours is paired by "
    "seed: per seed both cells have, d = a − b. The **95% interval** of Δ counts seed noise *and* test-set noise: "
    "from the per-image outcomes the records carry (a two-way seeds × images analysis of variance), else from the "
    "binomial variance of the two accuracies on the test set's size (marked 'binomial'); for mAP from a paired "
    "image bootstrap of the per-image scores the records carry (marked 'bootstrap'); else seed noise alone "
    "(marked 'seeds only': detection AP and the crop statistics).",
    "- Directional claims: **holds** when the interval lies on the paper's side of 0, **opposite** when it lies on "
    "the other side, **inconclusive** when it covers 0.",
    "- Invariance claims (the paper says a ≈ b): **equivalent** when the 90% interval lies inside ±margin (two "
    "one-sided tests at α = 0.05; the margin is the table's minimum effect of interest, 2 points), **differs** when the 95% interval lies beyond a margin, "
    "**inconclusive** otherwise.",
    "- **Holm**: whether the verdict survives Holm's correction across the judged claims of its paper table "
    "(family-wise α = 0.05): ✓ survives, ✗ does not. Pooled rows judge a claim the paper makes in words over "
    "several cells by the **mean** effect over them (per seed, the mean of the members' d; test-set variance "
    "bounded as if the members' test noise were perfectly correlated); the note says whether each cell holds on its "
    "own, the paper's 'every' (an intersection–union test).",
    "- **duplicate**: the same numbers as another row at mini (shown once); **not testable at mini**: the cells "
    "cannot vary; **computed**: a quantity computed from the recipe, not measured; **single seed**: n = 1; **not "
    "run** / **not paired**: a cell has no record / no seed in common. Conditional claims say on what in the note.")


@dataclass(frozen=True)
class Row:
    claim: Claim | Family
    mean: float | None
    std: float | None  # sample std of the per-seed differences
    n: int
    verdict: str
    interval: S.Interval | None = None
    test_noise: str = ""  # 'per-image', 'binomial', 'seeds only'
    p: float | None = None  # two-sided p (directional) or TOST p (invariance)
    holm: bool | None = None


def _cell(computed: dict, key: str) -> render.Cell:
    name, row, col = key.split("/")
    return computed[name].cells[row, col]


def _source(key: str):
    """The records source (experiment, evaluator, metric) of a cell 'table/row/col'."""
    name, row, col = key.split("/")
    table = tables.get(name)
    r = next(x for x in table.rows if x.key == row)
    return r.sources[[c.key for c in table.cols].index(col)]


def _paired(claim: Claim, a: render.Cell, b: render.Cell) -> tuple[list, list] | Row:
    """(seeds both cells have, per-seed d = a − b, or a / b for a ratio), or the row of a claim that has none."""
    if not a.n or not b.n:
        return Row(claim, None, None, 0, "not run")
    seeds = sorted(set(a.values) & set(b.values))
    if not seeds:
        return Row(claim, None, None, 0, "not paired")
    return seeds, [a.values[s] / b.values[s] if claim.kind == "ratio" else a.values[s] - b.values[s] for s in seeds]


def judge_2se(claim: Claim, a: render.Cell, b: render.Cell) -> Row:
    """The ledger's rule before docs/statistics.md (|mean| > 2·SE of the seed differences: a two-sided p < 0.18 at
    n = 3, and no test-set noise). Kept only for the speed pilots, whose criteria were written with it."""
    got = _paired(claim, a, b)
    if isinstance(got, Row):
        return got
    seeds, d = got
    mean, n = statistics.fmean(d), len(d)
    if n == 1:
        return Row(claim, mean, None, 1, "single seed")
    std = statistics.stdev(d)
    x, two_se = (mean - 1 if claim.kind == "ratio" else mean), 2 * std / math.sqrt(n)
    if claim.kind == "same":
        verdict = "holds (within noise)" if abs(x) <= two_se else "differs beyond noise"
    elif abs(x) <= two_se:
        verdict = "within noise"
    else:
        verdict = "holds beyond noise" if (x > 0) == (claim.kind != "less") else "opposite beyond noise"
    return Row(claim, mean, std, n, verdict)


# Evaluators whose metric is an accuracy in % over the record's images (a binomial test-set variance applies).
# The evaluator units declare theirs (relabel/evaluators/<name>.py: accuracy); "grid" is transfer's fine-grained test.
_ACCURACY = set(ACCURACY) | {"grid"}


def _test_noise(claim: Claim, a: render.Cell, b: render.Cell, seeds: list) -> tuple[str, object]:
    """('per-image', z[seed, image]) when every paired record carries outcomes of the same images; ('bootstrap',
    variance) when they carry per-image scores (mAP); ('binomial', variance of the mean difference) for an
    accuracy; else ('seeds only', 0)."""
    ra = [r for s in seeds for r in a.records if r["seed"] == s]
    rb = [r for s in seeds for r in b.records if r["seed"] == s]
    if len(ra) != len(seeds) or len(rb) != len(seeds):  # cells made by hand (tests) carry no records
        return "seeds only", 0.0
    metric_a, metric_b = (_source(k).metric for k in (claim.a, claim.b))
    z = O.paired_matrix(ra, rb, metric_a, metric_b)
    if z is not None and z.shape[1] > 1:
        return "per-image", z
    pairs = O.paired_scores(ra, rb, metric_a) if metric_a == metric_b else None
    if pairs is not None:  # mAP: the images resampled, the same draw for every seed and both arms
        return "bootstrap", S.map_bootstrap_var(pairs)
    if all(r["evaluator"] in _ACCURACY for r in ra + rb):
        # independent images: ImageNet-C's record size counts corrupted copies, its images_per_cell the images
        size = min(int(r["dataset"].get("images_per_cell", r["dataset"]["size"])) for r in ra + rb)
        pa, pb = statistics.fmean(a.values[s] for s in seeds) / 100, statistics.fmean(b.values[s] for s in seeds) / 100
        return "binomial", 1e4 * S.binomial_test_var(pa, pb, size)
    return "seeds only", 0.0


def judge(claim: Claim, a: render.Cell, b: render.Cell, scale: str = "mini") -> Row:
    """One claim's row: the paired differences of its two cells, their 95% interval and the verdict of
    VERDICT_RULE (without Holm: `ledger` adds it per family). Its p is the one its verdict reads: two-sided for a
    directional claim; for an invariance, the TOST p, or the p of H0: |Δ| ≤ margin when the verdict is 'differs'."""
    got = _paired(claim, a, b)
    if isinstance(got, Row):
        return got
    seeds, d = got
    mean, n = statistics.fmean(d), len(d)
    std = statistics.stdev(d) if n > 1 else None
    if claim.id in COMPUTED or claim.kind == "ratio":
        return Row(claim, mean, std, n, "computed")
    if claim.id in NOT_TESTABLE and scale == "mini":
        return Row(claim, mean, std, n, "not testable at mini")
    if n == 1:
        return Row(claim, mean, None, 1, "single seed")
    noise, extra = _test_noise(claim, a, b, seeds)
    iv = S.two_way_interval(extra) if noise == "per-image" else S.seed_interval(d, extra)
    if claim.kind == "same":
        margin = MARGINS.get(claim.id, MIN_EFFECT.get(claim.ref, 2.0))
        v = S.equivalence(iv, margin)
        return Row(claim, mean, std, n, "inconclusive (invariance)" if v == "inconclusive" else v, iv, noise,
                   iv.p_beyond(margin) if v == "differs" else iv.p_tost(margin))
    return Row(claim, mean, std, n, S.directional(iv, +1 if claim.kind == "more" else -1), iv, noise,
               iv.p_two_sided())


def judge_family(family: Family, rows: dict[str, Row], cells: dict[str, tuple]) -> Row:
    """A pooled row: per common seed, the mean of the members' d (so seed-level correlation between members is
    kept), its paired t interval widened by the members' test-set variances bounded as perfectly correlated. Its
    verdict is about the mean effect over the members; `note` says how many members hold on their own (the paper's
    'every' reading: an intersection–union test, Berger 1982, which holds only when each member does)."""
    members = [rows[m] for m in family.members]
    if any(r.verdict in ("not run", "not paired") for r in members):
        return Row(family, None, None, 0, "not run")
    seeds = sorted(set.intersection(*(set(a.values) & set(b.values) for a, b in (cells[m] for m in family.members))))
    if len(seeds) < 2:
        return Row(family, None, None, len(seeds), "single seed" if seeds else "not paired")
    per_seed = [statistics.fmean(cells[m][0].values[s] - cells[m][1].values[s] for m in family.members)
                for s in seeds]
    test_sd = statistics.fmean(math.sqrt(r.interval.test_var) if r.interval else 0.0 for r in members)
    iv = S.seed_interval(per_seed, test_sd ** 2)
    kinds = {r.test_noise for r in members}
    noise = kinds.pop() if len(kinds) == 1 else "mixed"
    return Row(family, iv.mean, statistics.stdev(per_seed), len(seeds), S.directional(iv, +1), iv, noise,
               iv.p_two_sided())


def _with_holm(rows: list[Row]) -> list[Row]:
    """Each judged row's Holm flag within its paper table (claims and pooled rows of one `ref` are one family)."""
    out = list(rows)
    by_ref: dict = {}
    for i, r in enumerate(rows):
        if r.p is not None:
            by_ref.setdefault(r.claim.ref, []).append(i)
    for idx in by_ref.values():
        for i, keep in zip(idx, S.holm([rows[i].p for i in idx])):
            r = rows[i]
            out[i] = Row(r.claim, r.mean, r.std, r.n, r.verdict, r.interval, r.test_noise, r.p,
                         keep if r.verdict in ("holds", "opposite", "equivalent", "differs") else None)
    return out


def ledger(records: list, scale: str = "mini") -> list[Row]:
    """Every claim judged from `records` at `scale` (all recorded seeds), in CLAIMS order, then the pooled rows;
    duplicates (DUPLICATES, at mini, when their numbers really repeat the other row's) are marked, not judged."""
    computed = {name: render.compute(tables.get(name), records, scale)
                for name in sorted({k.split("/")[0] for c in CLAIMS for k in (c.a, c.b)})}
    cells = {c.id: (_cell(computed, c.a), _cell(computed, c.b)) for c in CLAIMS}
    rows = {c.id: judge(c, *cells[c.id], scale=scale) for c in CLAIMS}
    for cid, (other, _) in DUPLICATES.items():
        r, o = rows[cid], rows[other]
        same = all(x.values.keys() == y.values.keys() and all(abs(x.values[k] - y.values[k]) < 1e-9 for k in x.values)
                   for x, y in zip(cells[cid], cells[other]))
        if scale == "mini" and r.n and same:
            rows[cid] = Row(r.claim, r.mean, r.std, r.n, "duplicate")
    out = [rows[c.id] for c in CLAIMS] + [judge_family(f, rows, cells) for f in FAMILIES]
    return _with_holm(out)


def _every_note(r: Row, rows: list[Row]) -> str:
    """A pooled row's intersection–union reading: how many of its members hold on their own."""
    if r.interval is None:
        return ""
    by_id = {x.claim.id: x for x in rows}
    held = sum(by_id[m].verdict == "holds" for m in r.claim.members if m in by_id)
    k = len(r.claim.members)
    return (f"the verdict is the mean over its {k} cells; 'every' (each cell on its own, intersection–union): "
            + ("holds" if held == k else f"not shown, {held} of {k} hold"))


def _nonzero_note(r: Row) -> str:
    """An 'equivalent' row whose 95% interval excludes 0: equivalence bounds the difference by the margin, it does
    not say there is none (a result can be equivalent and different from 0 at once: Lakens 2017)."""
    if r.verdict != "equivalent" or r.interval is None or r.interval.lo <= 0 <= r.interval.hi:
        return ""
    margin = MARGINS.get(r.claim.id, MIN_EFFECT.get(r.claim.ref, 2.0))
    return (f"equivalent within ±{margin:g}, yet the 95% interval excludes 0: a difference smaller than the margin, "
            "not none")


def note(r: Row, rows: list[Row] | None = None) -> str:
    """The note column: why a row says less than its verdict, on what it is conditional, what it repeats; for a
    pooled row (given every row), how many of its members hold on their own."""
    cid = r.claim.id
    parts = [NOTES.get(cid, ""), CONDITIONAL.get(cid, ""),
             DUPLICATES[cid][1] if r.verdict == "duplicate" else "",
             NOT_TESTABLE.get(cid, "") if r.verdict == "not testable at mini" else "",
             "computed from the recipe, not measured: no noise to judge" if r.verdict == "computed" else "",
             _every_note(r, rows) if isinstance(r.claim, Family) and rows is not None else "",
             _nonzero_note(r),
             ("seeds only: test-set noise is not counted (the records keep no per-image outcomes of this metric), "
              "so the interval is too narrow by that part") if r.test_noise == "seeds only" and r.interval else ""]
    return "; ".join(p for p in parts if p)


def summary(rows: list[Row]) -> str:
    """'83 claims: 12 hold, …, 40 not run' (the verdicts that occur, in VERDICTS order)."""
    counts = [(sum(r.verdict == v for r in rows), IN_SUMMARY[v]) for v in VERDICTS]
    return f"{len(rows)} claims: " + ", ".join(f"{k} {v}" for k, v in counts if k) + "."
