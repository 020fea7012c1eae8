"""`python robustness/run.py` end to end on a small mini world and a tiny checkpoint: summary, records, errors."""
from __future__ import annotations

import pytest

from relabel import evaluators as E
from relabel import records as R
from relabel.evaluators.cli import main
from tests.test_eval_real import run_script
from tests.test_evaluators import make_small_world, make_tiny_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("robustness")
    return make_small_world(tmp / "worlds"), make_tiny_checkpoint(tmp / "tiny.safetensors")


def robustness(*args):
    return main(list(args), prog="robustness/run.py", description="", suites=E.ROBUSTNESS_SUITES,
                robustness=True)


def test_cli_end_to_end_prints_summary_and_writes_records(setup, isolated_runs):
    world, ckpt = setup
    out = run_script("robustness/run.py", "--ckpt", str(ckpt), "--data-root", str(world), "--epsilon", "4/255",
                     "--c-images", "3", "--c-corruptions", "fog,glass_blur", "--c-severities", "1,3",
                     "--no-progress")
    assert out.returncode == 0, out.stderr
    assert "Summary — ckpt/tiny on mini-v1-seed0" in out.stdout
    recs = {r["evaluator"]: r for r in R.read(isolated_runs / "records" / "mini.jsonl")}
    assert list(recs) == ["fgsm", "imagenet-a", "imagenet-c", "bgc"]
    assert recs["fgsm"]["config"]["fgsm_epsilon"] == pytest.approx(4 / 255)
    assert {"top1", "clean_top1"} <= set(recs["fgsm"]["metrics"])
    c = recs["imagenet-c"]
    assert c["config"]["c_images"] == 3 and c["config"]["c_source"].startswith("generated on the fly")
    assert set(c["metrics"]["acc"]) == {"fog", "glass_blur"} and set(c["metrics"]["acc"]["fog"]) == {"1", "3"}
    assert c["dataset"]["size"] == 3 * 4
    assert {"challenge_acc", "bg_gap", "acc_mixed_same", "acc_only_fg"} <= set(recs["bgc"]["metrics"])
    for name, r in recs.items():
        key = {"imagenet-c": "mean_acc", "bgc": "challenge_acc"}.get(name, "top1")
        row = next(line for line in out.stdout.splitlines() if line.startswith(name + " "))
        assert f"{r['metrics'][key]:.2f}" in row


def test_help_explains_the_robustness_options(capsys):
    with pytest.raises(SystemExit):
        robustness("--help")
    text = capsys.readouterr().out
    for word in ("--epsilon", "8/255", "--c-images", "--c-root", "imagecorruptions", "bgc"):
        assert word in text


def test_bad_options_and_missing_data_are_clear_errors(setup, tmp_path, capsys):
    world, ckpt = setup
    with pytest.raises(SystemExit) as e:
        robustness("--ckpt", str(ckpt), "--epsilon", "8")
    assert e.value.code == 2 and "pixel units" in capsys.readouterr().err
    assert robustness("--ckpt", str(ckpt), "--data-root", str(world), "--suite", "c",
                      "--c-corruptions", "fogg") == 1
    assert "ImageNet-C corruptions must come from" in capsys.readouterr().err
    assert robustness("--ckpt", str(ckpt), "--data-root", str(world), "--suite", "c",
                      "--c-root", str(tmp_path / "imagenet-c")) == 1
    err = capsys.readouterr().err
    assert "pre-rendered ImageNet-C folder" in err and "<corruption>/<severity 1-5>/<class>/<image>" in err
    assert robustness("--ckpt", str(ckpt), "--data-root", str(world), "--suite", "val") == 1
    assert "unknown suite" in capsys.readouterr().err
