"""`python eval_real/run.py` end to end on a small mini world and a tiny checkpoint: summary, records, errors."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from relabel import evaluators as E
from relabel import records as R
from relabel.checkpoint import load_model
from relabel.evaluators.cli import main
from tests.test_evaluators import make_small_world, make_tiny_checkpoint

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eval_real")
    return make_small_world(tmp / "worlds"), make_tiny_checkpoint(tmp / "tiny.safetensors")


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, script, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)


def eval_real(*args):
    return main(list(args), prog="eval_real/run.py", description="", suites=E.EVAL_REAL_SUITES)


def test_cli_end_to_end_prints_summary_and_writes_records(setup, isolated_runs):
    world, ckpt = setup
    out = run_script("eval_real/run.py", "--ckpt", str(ckpt), "--data-root", str(world), "--suite",
                     "val,v2,real,shankar", "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "Summary — ckpt/tiny on mini-v1-seed0" in out.stdout
    recs = R.read(isolated_runs / "records" / "mini.jsonl")
    names = ["val", "v2-top-images", "v2-matched-frequency", "v2-threshold0.7", "real", "shankar"]
    assert [r["evaluator"] for r in recs] == names
    for r in recs:
        assert r["experiment"] == "ckpt/tiny" and r["seed"] == 3 and r["scale"] == "mini"  # seed from the ckpt
        assert r["config"]["eval_input_size"] == 32 and r["config"]["arch"] == "resnet18"
        assert r["config"]["eval_crop_ratio"] == 1.0  # mini default: the 48 px images are seen whole
        assert r["config"]["test_sets"] == f"{world.name}/test-v2"  # which test sets (relabel.data.world_test_sets)
        row = next(line for line in out.stdout.splitlines() if line.startswith(r["evaluator"] + " "))
        assert f"{r['metrics']['top1']:.2f}" in row
        assert re.search(rf"\s{r['dataset']['size']}\s", row)
    # The printed numbers are the registry's on the same model.
    model = load_model(ckpt)
    val = E.evaluate("val", model, E.DataRoots.mini(world), input_size=32, crop_ratio=1.0, progress=False)
    assert recs[0]["metrics"]["top1"] == pytest.approx(val.metrics["top1"])
    assert recs[0]["dataset"]["size"] == 60
    shankar = recs[-1]["metrics"]
    assert {"top1", "top1_unclear_classavg", "n_scored"} <= set(shankar)


def test_help_names_the_suites_and_layout(capsys):
    with pytest.raises(SystemExit) as e:
        eval_real("--help")
    assert e.value.code == 0
    text = re.sub(r"-\s+", "-", capsys.readouterr().out)  # argparse wraps lines at hyphens
    for word in ("--ckpt", "--suite", "v2-matched-frequency", "--data-root", "runs/records/<scale>.jsonl",
                 "imagenetv2-<variant>-format-val"):
        assert word in text


def test_missing_dataset_folder_is_one_clear_error(setup, tmp_path, capsys):
    world, ckpt = setup
    partial = tmp_path / "world"
    shutil.copytree(world, partial, ignore=shutil.ignore_patterns("v2"))
    assert eval_real("--ckpt", str(ckpt), "--data-root", str(partial), "--suite", "val,v2") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ImageNetV2 top-images folder") and "<int class>" in err
    assert len(err.splitlines()) == 1
    assert not (Path(os.environ["RELABEL_RUNS"]) / "records" / "mini.jsonl").exists()  # failed before any work


def test_checkpoint_that_does_not_fit_is_one_clear_error(setup, tmp_path, capsys):
    world, ckpt = setup
    five = make_tiny_checkpoint(tmp_path / "five.safetensors", num_classes=5)
    assert eval_real("--ckpt", str(five), "--data-root", str(world), "--suite", "val") == 1
    assert "5-class classifier but 10 classes were expected" in capsys.readouterr().err
    assert eval_real("--ckpt", str(ckpt), "--arch", "resnet50", "--data-root", str(world)) == 1
    assert "does not fit timm 'resnet50'" in capsys.readouterr().err
    torch.save(load_model(ckpt).state_dict(), tmp_path / "plain.pth")  # no metadata, tiny widths: not inferable
    assert eval_real("--ckpt", str(tmp_path / "plain.pth"), "--data-root", str(world)) == 1
    assert "pass --arch" in capsys.readouterr().err
    assert eval_real("--ckpt", str(ckpt), "--data-root", str(world), "--suite", "fgsm") == 1
    assert "unknown suite ['fgsm']" in capsys.readouterr().err
    assert eval_real("--ckpt", str(ckpt), "--data-root", str(tmp_path / "nowhere")) == 1
    assert "is not a complete mini world" in capsys.readouterr().err


def test_records_can_be_redirected_or_skipped(setup, tmp_path, capsys):
    world, ckpt = setup
    target = tmp_path / "mine.jsonl"
    assert eval_real("--ckpt", str(ckpt), "--data-root", str(world), "--suite", "real", "--no-progress",
                     "--records", str(target), "--experiment", "demo/x", "--seed", "5") == 0
    (rec,) = [json.loads(line) for line in target.read_text().splitlines()]
    assert rec["experiment"] == "demo/x" and rec["seed"] == 5 and rec["evaluator"] == "real"
    assert "records: 1 appended to" in capsys.readouterr().out
    assert eval_real("--ckpt", str(ckpt), "--data-root", str(world), "--suite", "val", "--no-records",
                     "--no-progress") == 0
    assert "records:" not in capsys.readouterr().out
