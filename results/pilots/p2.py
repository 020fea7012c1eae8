"""Speed pilot P2's verdicts (docs/mini-world.md, issue 17) from its committed records, by the ledger's own code
(results/pilots/common.py):

    python -m results.pilots.p2
"""
from __future__ import annotations

from results.pilots import common


def verdicts() -> list[str]:
    return common.verdicts("P2", "p2_deep_stem_20ep.jsonl")


if __name__ == "__main__":
    print("\n".join(verdicts()))
