"""Speed pilot P1's verdicts (docs/mini-world.md, issue 17) from its committed records, by the ledger's own code:

    python -m results.pilots.p1

Claims 2-3 are judged by results.claims.judge on P1's records (seeds 0-2) beside the committed records; criterion 4
by results.claims.regime on the committed annotator records with P1's ResNet-50 rows in place of the committed ones.
Criterion 1 (speed) is p1_speed.json, a wall-clock measurement (no record holds training time).
"""
from __future__ import annotations

import json
from pathlib import Path

from relabel import records as R
from results import claims as C
from results import render, tables
from results.demo import ORACLE_CLAIM
from results.publish import published_records_path

HERE = Path(__file__).parent
SEEDS = (0, 1, 2)


def verdicts() -> list[str]:
    pilot = R.read_many([HERE / "p1_deep_stem.jsonl"])
    committed = R.read_many([published_records_path("mini")])
    relabel = next(c for c in C.CLAIMS if (c.a, c.b) == ("table3/relabel/val", "table3/original/val"))
    speed = json.loads((HERE / "p1_speed.json").read_text())
    s = speed["wall_s"]
    out = [f"1. speed (AVX2 emulated, one thread): {s['p1']:.1f} s (today's recipe {s['todays_recipe']:.1f} s) -> "
           f"{'met' if s['p1'] <= 120 else 'not met'} (≤ 120 s)"]
    for i, claim in ((2, ORACLE_CLAIM), (3, relabel)):
        name = claim.a.split("/")[0]
        p = {name: render.compute(tables.get(name), pilot, "mini", SEEDS)}
        c = {name: render.compute(tables.get(name), committed, "mini", SEEDS)}
        rp, rc = (C.judge(claim, C._cell(x, claim.a), C._cell(x, claim.b)) for x in (p, c))
        out.append(f"{i}. {claim.text}: P1 {C.ours_text(rp)} (n={rp.n}) {rp.verdict}; committed recipe "
                   f"{C.ours_text(rc)} (n={rc.n}) {rc.verdict}")
    mixed = [r for r in committed if not r["experiment"].startswith("pretrain/resnet50/")] + pilot
    out += [f"4. regime: {crit.split('. ', 1)[1]}: {measured} -> {verdict}" for crit, measured, verdict in C.regime(mixed)
            if crit.startswith("1.")]
    return out


if __name__ == "__main__":
    print("\n".join(verdicts()))
