"""`python -m bench.gpu_check` (issue 27's prepared GPU check) cannot rot: its `--cpu --tiny` mode runs the same
stages in CI and writes the JSON the GPU run will write; the budget skips stages cleanly."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("data", "ceiling", "ours_relabel", "ours_original", "timm_loader", "trainer", "annotation", "evaluation")


def _run(*args, timeout=120):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "bench.gpu_check", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_cpu_tiny_runs_every_stage_and_writes_the_json(tmp_path):
    out = tmp_path / "check" / "gpu_check.json"
    p = _run("--cpu", "--tiny", "--out", str(out))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["mode"] == "tiny" and doc["complete"] is True and "running" not in doc
    assert {"device", "cores", "workers", "torch", "timm", "commit", "settings", "goals", "goals_met"} <= set(doc)
    assert tuple(doc["stages"]) == STAGES
    for name in STAGES[1:]:
        st = doc["stages"][name]
        assert st["images_s"] > 0 and st["seconds"] > 0, name
        assert f"] {name}" in p.stdout  # one line per stage
    for name in ("ceiling", "ours_relabel", "ours_original", "timm_loader", "trainer"):
        assert 0.0 <= doc["stages"][name]["data_wait_fraction"] < 1.0, name
    assert doc["stages"]["annotation"]["forward_images_s"] > 0
    assert set(doc["ratios"]) == {"relabel_vs_ceiling", "relabel_vs_timm_loader", "original_vs_ceiling"}
    assert set(doc["goals_met"]) == set(doc["goals"]) == {"relabel_vs_ceiling", "relabel_vs_timm_loader",
                                                          "annotation_images_s"}
    assert (out.parent / "gpu_check_data").is_dir()  # the images are built beside the JSON


def test_a_spent_budget_skips_every_stage_cleanly_and_no_gpu_is_one_sentence(tmp_path):
    out = tmp_path / "gpu_check.json"
    p = _run("--cpu", "--tiny", "--max-minutes", "0", "--out", str(out))
    assert p.returncode == 0, p.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert tuple(doc["stages"]) == STAGES and doc["complete"] is False
    assert all("skipped" in s for s in doc["stages"].values())
    assert "budget" in doc["stages"]["data"]["skipped"] and "needs data" in doc["stages"]["ours_relabel"]["skipped"]
    if not torch.cuda.is_available():
        p = _run("--tiny", "--out", str(tmp_path / "x.json"))
        assert p.returncode == 2 and p.stderr.startswith("error: no CUDA device") and "Traceback" not in p.stderr
        assert p.stderr.count("\n") == 1
