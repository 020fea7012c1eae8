"""Every registered experiment's recipe hash at seeds 0-2 equals the committed dump (issue 26's refactor check).

A change that moves a hash makes every record of that experiment stale (`make` runs it again). When a recipe is
meant to change, regenerate the dump with `python tools/recipe_hashes.py tests/fixtures/recipe_hashes.json` and
say why in the commit.
"""
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "recipe_hashes.json"
# the user's files that name a full-scale annotator, maps or lists: unset, so full-scale recipes that need them
# are uncomputable (None) as in the dump
_EXTERNAL = ("RELABEL_ANNOTATOR_CKPT", "RELABEL_OFFICIAL_MAPS", "RELABEL_CLEAN_LIST",
             "RELABEL_COCO_ANNOTATOR_CKPT", "RELABEL_COCO_ANNOTATOR_ARCH")


def test_recipe_hashes_unchanged(monkeypatch):
    for name in _EXTERNAL:
        monkeypatch.delenv(name, raising=False)
    from relabel import configs
    monkeypatch.setattr(configs, "_ACTIVE", {})  # no --set of an earlier test in this process
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        from recipe_hashes import recipe_hashes
    finally:
        sys.path.remove(str(ROOT / "tools"))
    want = json.loads(FIXTURE.read_text())
    got = recipe_hashes()
    changed = sorted(k for k in set(want) | set(got) if want.get(k) != got.get(k))
    assert not changed, f"recipe hashes changed for {changed}: their records would all be stale"

