"""The seeds plan (issue 25): how many seeds each paper table needs for 80% power at α = 0.05, from variances only.

    python -m results.power                       # the plan table, Markdown (docs/statistics-plan.md holds it)
    python -m results.power --discordance F.jsonl # per-image discordance measured from records with outcomes

Inputs, and nothing else (never an observed mean difference): per claim, the sample std of today's per-seed
differences (the committed records); per test set, its planned size (TEST_SETS) and the share of images on which
two models disagree (q: the variance of one image's paired difference of correct bits is q − Δ² ≤ q, so the
test-set variance of the mean difference is at most q / N); per paper table, its minimum effect of interest
(results.claims.MIN_EFFECT, with its reason) and the cost of one seed of its runs (RUN_MINUTES). n per table is the largest n its
directional claims need (results.stats.seeds_needed) and, for invariance claims, what TOST needs to show
equivalence at the margin when the true Δ is 0; a table whose n is over the budget is declared underpowered at
mini before the runs, with its n_needed.
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from scipy import stats as st

from relabel import records as R
from relabel.evaluators import MINI_TEST_IMAGES, ROBUSTNESS
from results import claims as C
from results import render, tables
from results import stats as S
from results.publish import published_records_path

# Planned test-set sizes at mini (images; a claim's test set is its cells' evaluator's): the issue's rule, a
# binomial SE ≤ 0.5 points for one accuracy near 50% (≥ 10,000), where the budget allows it.
# The evaluators' own come from their units (relabel/evaluators/<name>.py: mini_test_images; ImageNet-C's 1,000 are
# images per corruption × severity, 75 copies each: 75,000 forwards per model).
TEST_SETS = {**MINI_TEST_IMAGES,
             "grid": 1_000,  # fine-grained test images per dataset (16 → 100 per class)
             "coco-val": 2_000, "coco": 2_000, "crop_conf": 0, "cost": 0}
# Metrics that are not a mean over images (AP, mAP, crop statistics): the ledger judges them on seed noise alone,
# and the plan sizes them the same way (their test sets still grow, which shrinks what the ledger leaves out).
SEEDS_ONLY = {"coco-val", "coco", "crop_conf"}
# Share of test images on which two of the compared models disagree (one right, one wrong; ImageNet-C: the mean
# squared difference of the two models' per-image shares of corrupted copies right), measured by the variance pilot
# of 2026-12-06 (docs/statistics-plan.md: seed-0 ResNet-50 original / ReLabel / oracle maps, their pairs averaged;
# only these variances were read from it); elsewhere the conservative default.
MEASURED_DISCORDANCE = {"val": 0.112, "real": 0.120, "shankar": 0.106, "v2-top-images": 0.117, "fgsm": 0.107,
                        "imagenet-a": 0.155, "imagenet-c": 0.0245,
                        "v2-matched-frequency": 0.117, "v2-threshold0.7": 0.117}  # V2's other variants: top-images'

DEFAULT_DISCORDANCE = 0.30
# One seed of one run, minutes on one core of this project's bf16-native EPYC, evaluations on the planned test sets
# included (docs/mini-world.md's ms/step × 1,170 steps, + evaluation; transfer, detection and COCO from the records'
# wall times).
RUN_MINUTES = {"resnet50": 3.0, "resnet18": 2.5, "resnet101": 3.0, "efficientnet_b0": 5.0, "efficientnet_b1": 6.0,
               "efficientnet_b2": 6.5, "efficientnet_b3": 7.0, "rexnet_100": 11.5, "kd": 6.5, "table7_eval": 4.0,
               "finegrained": 2.0, "faster_rcnn": 4.5, "mask_rcnn": 7.5, "coco_resnet50": 3.0, "coco_resnet101": 6.0}
BUDGET_RUN_MINUTES = 12 * 60 * 2  # ~12 h of wall time on 2 cores, one thread per run
MAX_SEEDS = 20  # at most this many seeds for any table: beyond it a table is declared underpowered


def run_minutes(experiment: str, evaluator: str) -> float:
    parts = experiment.split("/")
    if parts[0] == "pretrain":
        m = RUN_MINUTES["kd"] if parts[2].startswith("kd_") else RUN_MINUTES.get(parts[1], RUN_MINUTES["resnet50"])
        return m + (RUN_MINUTES["table7_eval"] if evaluator in ROBUSTNESS else 0)
    if parts[0] == "transfer":
        return RUN_MINUTES["finegrained"] if parts[1] == "finegrained" else RUN_MINUTES[parts[2]]
    if parts[0] == "multilabel_coco":
        return RUN_MINUTES[f"coco_{parts[1]}"]
    return 0.0  # analyses and annotators: trained once, outside the seeds plan


@dataclass
class Plan:
    ref: str
    n_claims: int
    seed_sd: float  # median over the table's claims of today's per-seed difference std
    test_sd: float  # sd of the mean difference from test-set sampling at the planned sizes (largest claim's)
    delta: float
    n_needed: int | None
    minutes_per_seed: float
    seeds: int  # planned
    underpowered: bool


def tost_power(margin: float, seed_sd: float, test_var: float, n: int) -> float:
    """Power of TOST at α = 0.05 to show |Δ| < margin when Δ = 0 (normal approximation at the effective df)."""
    iv = S.Interval(0.0, seed_sd ** 2 / n, test_var, n, 0)
    h = iv.half_width(1 - 2 * S.ALPHA)
    if h >= margin:
        return 0.0
    return float(2 * st.norm.cdf((margin - h) / iv.se) - 1) if iv.se > 0 else 1.0


def plan(records: list, discordance: dict | None = None, scale: str = "mini") -> list[Plan]:
    discordance = {**MEASURED_DISCORDANCE, **(discordance or {})}
    computed = {name: render.compute(tables.get(name), records, scale)
                for name in sorted({k.split("/")[0] for c in C.CLAIMS for k in (c.a, c.b)})}
    by_ref: dict = {}
    for c in C.CLAIMS:
        if c.id in C.COMPUTED or c.id in C.NOT_TESTABLE or c.id in C.DUPLICATES or c.ref == C.BEYOND:
            continue  # (claims beyond the paper are outside the plan)
        by_ref.setdefault(c.ref, []).append(c)
    out = []
    for ref, cs in by_ref.items():
        sds, tvars, need = [], [], []
        for c in cs:
            a, b = (C._cell(computed, k) for k in (c.a, c.b))
            seeds = sorted(set(a.values) & set(b.values))
            d = [a.values[s] - b.values[s] for s in seeds]
            sd = statistics.stdev(d) if len(d) > 1 else float("nan")
            src = C._source(c.a)
            n_test = TEST_SETS.get(src.evaluator, 0)
            q = discordance.get(src.evaluator, DEFAULT_DISCORDANCE)
            tvar = 1e4 * q / n_test if n_test and src.evaluator not in SEEDS_ONLY else 0.0
            sds.append(sd)
            tvars.append(tvar)
            if c.kind == "same":
                m = C.MARGINS[c.id]
                n = next((k for k in range(2, 1001) if tost_power(m, sd, tvar, k) >= 0.8), None)
            else:
                n = S.seeds_needed(C.MIN_EFFECT[ref], sd, tvar)
            need.append(n)
        n_needed = None if any(n is None for n in need) else max(need)
        out.append(Plan(ref, len(cs), statistics.median(sds), math.sqrt(max(tvars)), C.MIN_EFFECT[ref], n_needed,
                        sum(experiments_of(ref).values()), 0, False))
    # Seeds: tables share runs (ReLabel and the original labels feed Tables 2-6 and Fig. 6), so the cost of a seeds
    # choice is the minutes of each experiment at the most seeds any table gives it. Every table keeps at least 3
    # (today's); tables are powered (n_needed seeds, at most MAX_SEEDS) in order of the extra minutes that costs,
    # while the total stays within the budget; the others are declared underpowered at mini.
    exp_of = {p.ref: experiments_of(p.ref) for p in out}
    minutes = _all_minutes(exp_of)
    seeds = {e: 3 for e in minutes}

    def total(s: dict) -> float:
        return sum(m * s[e] for e, m in minutes.items())
    for p in out:
        p.seeds = 3
        p.underpowered = p.n_needed is None or p.n_needed > 3
    candidates = [p for p in out if p.n_needed is not None and 3 < p.n_needed <= MAX_SEEDS]
    while candidates:
        def extra(p):
            trial = {**seeds, **{e: max(seeds[e], p.n_needed) for e in exp_of[p.ref]}}
            return total(trial) - total(seeds)
        best = min(candidates, key=extra)
        candidates.remove(best)
        trial = {**seeds, **{e: max(seeds[e], best.n_needed) for e in exp_of[best.ref]}}
        if total(trial) <= BUDGET_RUN_MINUTES:
            seeds, best.seeds, best.underpowered = trial, best.n_needed, False
    for p in out:  # a table whose runs other tables already give more seeds reads them all
        p.seeds = min(seeds[e] for e in exp_of[p.ref]) if exp_of[p.ref] else p.seeds
        p.underpowered = p.n_needed is None or p.n_needed > p.seeds
    return out


def total_minutes(plans: list[Plan]) -> float:
    """Run-minutes of a plan: each experiment once, at the most seeds any table that reads it plans (a table's
    seeds are the fewest any of its experiments gets, so this is exactly what `plan` budgeted)."""
    seeds: dict = {}
    for p in plans:
        for e in experiments_of(p.ref):
            seeds[e] = max(seeds.get(e, 0), p.seeds)
    return sum(m * seeds[e] for e, m in _all_minutes({p.ref: experiments_of(p.ref) for p in plans}).items())


def experiments_of(ref: str) -> dict[str, float]:
    """{experiment: minutes per seed} of the runs a paper table's judged claims read."""
    out: dict = {}
    for c in C.CLAIMS:
        if c.ref != ref or c.id in C.COMPUTED or c.id in C.NOT_TESTABLE or c.id in C.DUPLICATES:
            continue
        for k in (c.a, c.b):
            s = C._source(k)
            out[s.experiment] = max(out.get(s.experiment, 0.0), run_minutes(s.experiment, s.evaluator))
    return out


def _all_minutes(exp_of: dict) -> dict[str, float]:
    out: dict = {}
    for es in exp_of.values():
        for e, m in es.items():
            out[e] = max(out.get(e, 0.0), m)
    return out


def to_markdown(plans: list[Plan]) -> str:
    lines = ["| paper | claims | δ | seed sd (median) | test-set sd | n for 80% power | minutes / seed | planned seeds "
             "| power |", "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for p in plans:
        lines.append(f"| {p.ref} | {p.n_claims} | {p.delta:g} | {p.seed_sd:.2f} | {p.test_sd:.2f} | "
                     f"{p.n_needed if p.n_needed is not None else '> 1000'} | {p.minutes_per_seed:.0f} | {p.seeds} | "
                     f"{'underpowered at mini' if p.underpowered else '≥ 80%'} |")
    total = total_minutes(plans)
    lines.append(f"\nPlanned: {total:.0f} run-minutes (each run on one core; runs shared by several tables counted "
                 f"once) = {total / 120:.1f} h on 2 cores (budget {BUDGET_RUN_MINUTES / 120:.0f} h).")
    return "\n".join(lines) + "\n"


def discordance_of(records: list) -> dict:
    """Per evaluator, the mean share of images where two models of the same seed and test set disagree, over
    every pair of experiments in `records` that carry per-image outcomes (a variance: no mean difference enters)."""
    from relabel import outcomes as O
    by = {}
    for r in records:
        for metric, e in (r.get("outcomes") or {}).items():
            by.setdefault((r["evaluator"], r["seed"], e["ids"]), []).append(O.decode(e))
    out: dict = {}
    for (ev, _, _), xs in by.items():
        for i in range(len(xs)):
            for j in range(i + 1, len(xs)):
                out.setdefault(ev, []).append(float(((xs[i] - xs[j]) ** 2).mean()))
    return {ev: statistics.fmean(v) for ev, v in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m results.power", description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", default=str(published_records_path("mini")), help="records of today's seeds")
    ap.add_argument("--discordance", metavar="FILE", help="records with per-image outcomes (the variance pilot)")
    a = ap.parse_args(argv)
    for path, what in ((a.records, "--records"), (a.discordance, "--discordance")):
        if path and not Path(path).is_file():
            print(f"error: {what} file {path} does not exist; pass a records .jsonl (default: the committed "
                  "results/records/mini.jsonl).", file=sys.stderr)
            return 2
    records = R.read(a.records)
    if not records:
        print(f"error: {a.records} holds no records; the plan needs today's seeds' variances.", file=sys.stderr)
        return 2
    q = discordance_of(R.read(a.discordance)) if a.discordance else {}
    if q:
        print("measured discordance: " + ", ".join(f"{k} {v:.3f}" for k, v in sorted(q.items())))
    sys.stdout.write(to_markdown(plan(records, q)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
