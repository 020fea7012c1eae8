"""Pilot records (results/pilots/) are kept apart from the committed results, and P1's verdicts in the docs are what
its records give (python -m results.pilots.verdicts P1)."""
from pathlib import Path

from relabel import records as R
from results.pilots.verdicts import verdicts

ROOT = Path(__file__).resolve().parents[1]


def test_p1_verdicts_in_the_docs_come_from_its_records():
    lines = verdicts("P1")
    docs = (ROOT / "docs" / "mini-world.md").read_text()
    assert lines[0].startswith("1. speed") and "156.6 s" in lines[0] and "not met" in lines[0] and "156.6 s" in docs
    for line, delta in ((lines[1], "+4.69 ± 2.28"), (lines[2], "+4.20 ± 1.17")):
        assert f"P1 {delta} (n=3) holds beyond noise" in line and f"**{delta}** (n = 3), holds beyond noise" in docs
    assert "error ratio 0.53 -> met" in lines[3] and "error ratio **0.53** on val" in docs


def test_pilot_records_carry_their_recipe_and_are_not_the_committed_ones():
    pilot = R.read_many([ROOT / "results" / "pilots" / "p1_deep_stem.jsonl"])
    assert len(pilot) == 18 and {r["seed"] for r in pilot} == {0, 1, 2}
    assert all(r["config"]["train"]["model_kwargs"]["stem_type"] == "deep" for r in pilot)
    committed = {r["record_id"] for r in R.read_many([ROOT / "results" / "records" / "mini.jsonl"])}
    assert not committed & {r["record_id"] for r in pilot}


def test_p2_verdicts_in_the_docs_come_from_its_records():
    lines = verdicts("P2")
    docs = (ROOT / "docs" / "mini-world.md").read_text()
    assert lines[0].startswith("1. speed") and "105.8 s" in lines[0] and "-> met" in lines[0] and "105.8 s" in docs
    assert "P2 +0.51 ± 0.89 (n=3) within noise" in lines[1] and "**+0.51 ± 0.89** (n = 3), **within noise**" in docs
    assert "P2 +1.71 ± 0.87 (n=3) holds beyond noise" in lines[2] and "**+1.71 ± 0.87** (n = 3), holds beyond" in docs
    assert "error ratio 0.50 -> met" in lines[3] and "error ratio **0.50** on val" in docs


def test_p2_records_ran_20_epochs_with_the_deep_stem():
    pilot = R.read_many([ROOT / "results" / "pilots" / "p2_deep_stem_20ep.jsonl"])
    assert len(pilot) == 18 and {r["seed"] for r in pilot} == {0, 1, 2}
    assert all(r["config"]["train"]["epochs"] == 20 and r["config"]["train"]["model_kwargs"]["stem_type"] == "deep"
               for r in pilot)
