"""The seeds plan (results/power.py, docs/statistics-plan.md) is what the power analysis gives from the records it
was fixed on, and the ledger shows it."""
import subprocess
from pathlib import Path

import pytest

from relabel import records as R
from results import claims, ledger, power

ROOT = Path(__file__).resolve().parents[1]
PLAN_COMMIT = "d943533"  # the records the plan was computed from (343 records, sha256 1e71e2181bdd)


def _records_at(commit: str, tmp_path: Path) -> list:
    got = subprocess.run(["git", "show", f"{commit}:results/records/mini.jsonl"], cwd=ROOT, capture_output=True)
    if got.returncode != 0:
        pytest.skip(f"commit {commit} is not in this clone (shallow?)")
    path = tmp_path / "mini.jsonl"
    path.write_bytes(got.stdout)
    return R.read(path)


def test_the_frozen_plan_is_the_power_analysis_of_its_records(tmp_path):
    plans = power.plan(_records_at(PLAN_COMMIT, tmp_path))
    assert {p.ref: (p.seeds, p.n_needed) for p in plans} == claims.PLAN
    assert all(p.underpowered == (p.n_needed is None or p.n_needed > p.seeds) for p in plans)


def test_the_plan_doc_holds_the_plan_table(tmp_path):
    table = power.to_markdown(power.plan(_records_at(PLAN_COMMIT, tmp_path)))
    assert table in (ROOT / "docs" / "statistics-plan.md").read_text()


def test_the_ledger_says_which_tables_are_underpowered():
    assert ledger.plan_text("Table 3") == "10"
    assert ledger.plan_text("Table 8") == "3, underpowered (80% power needs > 1000)"
    assert ledger.plan_text("Table 4") == "3, underpowered (80% power needs 10)"


def test_a_wrong_records_path_is_one_sentence(tmp_path, capsys):
    assert power.main(["--records", str(tmp_path / "nope.jsonl")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "empty.jsonl").write_text("")
    assert power.main(["--records", str(tmp_path / "empty.jsonl")]) == 2
    assert "holds no records" in capsys.readouterr().err
