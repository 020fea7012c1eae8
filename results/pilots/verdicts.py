"""A speed pilot's verdicts (issue 17, docs/mini-world.md) from its committed records, by the ledger's own code:

    python -m results.pilots.verdicts P1     # or P2

Criterion 1 (speed) is the pilot's `<name>_speed.json`, a wall-clock measurement (no record holds training time);
criteria 2-3 are judged by results.claims.judge_2se (the rule the pilots' criteria were written with, before
docs/statistics.md) on the pilot's records (seeds 0-2) beside the committed records;
criterion 4 by results.ledger.regime on the committed annotator records with the pilot's ResNet-50 rows in place of
the committed ones. "Committed" means the records of commit BASE_COMMIT (read with `git show`): the pilots were
evaluated on the mini world's earlier, smaller test sets, as those records were; the records published since (issue
25's re-run) are on the larger ones, and a verdict that mixed the two would compare different test sets.
"""
from __future__ import annotations

import json
import subprocess
import tempfile
from pathlib import Path

from relabel import records as R
from results import claims as C
from results import ledger as L
from results import render, tables
from results.demo import ORACLE_CLAIM

HERE = Path(__file__).parent
SEEDS = (0, 1, 2)
SPEED_LIMIT_S = 120.0  # issue 17: one mini target run <= 2 min on one AVX2 core
BASE_COMMIT = "d943533"  # the last records on the pilots' test sets (343 records, sha256 1e71e2181bdd)
ROOT = HERE.parents[1]
PILOTS = {"P1": "p1_deep_stem.jsonl", "P2": "p2_deep_stem_20ep.jsonl"}  # each with <name>_speed.json beside it


def base_records() -> list[dict]:
    """The committed records of BASE_COMMIT, evaluated on the same test sets as the pilots."""
    got = subprocess.run(["git", "show", f"{BASE_COMMIT}:results/records/mini.jsonl"], cwd=ROOT, capture_output=True)
    if got.returncode != 0:
        raise SystemExit(f"the pilots are judged beside the records of commit {BASE_COMMIT}, and `git show` could not "
                         f"read them here: {got.stderr.decode().strip() or 'no git checkout'}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mini.jsonl"
        path.write_bytes(got.stdout)
        return R.read_many([path])


def verdicts(name: str) -> list[str]:
    """The four verdicts of pilot `name` (a key of PILOTS) from its records in results/pilots/."""
    key = name.lower()
    pilot = R.read_many([HERE / PILOTS[name]])
    committed = base_records()
    relabel = next(c for c in C.CLAIMS if (c.a, c.b) == ("table3/relabel/val", "table3/original/val"))
    s = json.loads((HERE / f"{key}_speed.json").read_text())["wall_s"]
    out = [f"1. speed (AVX2 emulated, one thread): {s[key]:.1f} s (today's recipe {s['todays_recipe']:.1f} s) -> "
           f"{'met' if s[key] <= SPEED_LIMIT_S else 'not met'} (≤ {SPEED_LIMIT_S:.0f} s)"]
    for i, claim in ((2, ORACLE_CLAIM), (3, relabel)):
        table = claim.a.split("/")[0]
        p = {table: render.compute(tables.get(table), pilot, "mini", SEEDS)}
        c = {table: render.compute(tables.get(table), committed, "mini", SEEDS)}
        rp, rc = (C.judge_2se(claim, C._cell(x, claim.a), C._cell(x, claim.b)) for x in (p, c))
        out.append(f"{i}. {claim.text}: {name} {L.ours_text(rp)} (n={rp.n}) {rp.verdict}; committed recipe "
                   f"{L.ours_text(rc)} (n={rc.n}) {rc.verdict}")
    mixed = [r for r in committed if not r["experiment"].startswith("pretrain/resnet50/")] + pilot
    out += [f"4. regime: {crit.split('. ', 1)[1]}: {measured} -> {verdict}"
            for crit, measured, verdict in L.regime(mixed) if crit.startswith("1.")]
    return out


def main(argv=None) -> int:
    import argparse
    ap = argparse.ArgumentParser(prog="python -m results.pilots.verdicts", description=__doc__.split("\n\n")[0])
    ap.add_argument("pilot", choices=sorted(PILOTS), help="which pilot's verdicts to print")
    print("\n".join(verdicts(ap.parse_args(argv).pilot)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
