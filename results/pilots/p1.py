"""Speed pilot P1's verdicts (docs/mini-world.md, issue 17) from its committed records, by the ledger's own code
(results/pilots/common.py):

    python -m results.pilots.p1
"""
from __future__ import annotations

from results.pilots import common


def verdicts() -> list[str]:
    return common.verdicts("P1", "p1_deep_stem.jsonl")


if __name__ == "__main__":
    print("\n".join(verdicts()))
