"""Dumps every registered experiment's recipe hash at seeds 0-2 (mini and full): the refactor check of issue 26.

`python tools/recipe_hashes.py OUT.json` writes {experiment id: {"mini": [h0, h1, h2], "full": [...]}}; a hash is
None where the experiment registers no recipe or cannot compute it here (launch.RecipeUnavailable, e.g. a full-scale
annotator checkpoint that is not set). tests/test_recipe_hashes.py recomputes tests/fixtures/recipe_hashes.json:
a refactor that changes any of them makes every record of that experiment stale.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2)
SCALES = ("mini", "full")


def recipe_hashes() -> dict:
    if str(ROOT) not in sys.path:  # run as a script from anywhere: the repository's packages are importable
        sys.path.insert(0, str(ROOT))
    from relabel import launch
    registry = launch.discover()
    return {exp_id: {scale: [launch.recipe_hash(registry[exp_id], scale, s) for s in SEEDS] for scale in SCALES}
            for exp_id in sorted(registry)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python tools/recipe_hashes.py", description=__doc__.split("\n\n")[0])
    ap.add_argument("out", nargs="?", default=None, metavar="OUT",
                    help="the JSON file to write (default: print it); the committed dump is "
                         "tests/fixtures/recipe_hashes.json")
    a = ap.parse_args(argv)
    text = json.dumps(recipe_hashes(), indent=1, sort_keys=True) + "\n"
    if a.out:
        with open(a.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
