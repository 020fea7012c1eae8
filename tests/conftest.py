"""Shared test set-up: every test writes runs and records under its own temporary folder."""
import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")  # tests must not depend on the thread count; 1 avoids spin-waits


@pytest.fixture(autouse=True)
def isolated_runs(tmp_path, monkeypatch):
    """RELABEL_RUNS points at a fresh folder, so no test reads or writes the user's runs/."""
    runs = tmp_path / "runs"
    monkeypatch.setenv("RELABEL_RUNS", str(runs))
    monkeypatch.setenv("RELABEL_PUBLISHED", str(tmp_path / "published"))  # nor the committed results/records/
    return runs
