"""The Vasudevan et al. evaluator unit: its metric on a tiny fake full-scale layout against a hand-computed answer,
its layout check (a missing or malformed file is one sentence), and its refusal at mini (exit 1, one sentence)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
import torch.nn as nn
from PIL import Image

from relabel import evaluators as E
from relabel.evaluators.cli import main
from tests.test_evaluators import TINY_KW, Unnormalize

PRED = (0, 5, 10, 15)  # what the toy model predicts for val images 1..4 (their grey levels 0, 1/3, 2/3, 1)


class GreyLevelModel(Unnormalize):
    """Predicts PRED[j] for a solid image of grey level j/3: each val image gets the class the test chose."""

    def __init__(self):
        super().__init__()
        self.num_classes = 1000
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        level = self.pixels(x).mean(dim=(1, 2, 3)) * 3  # 0..3
        logits = torch.full((len(x), 1000), -1e4) + 0 * self.dummy
        for j, c in enumerate(PRED):
            logits[:, c] = -(level - j) ** 2
        return logits


def fake_full_root(root: Path, labels: dict | str | None) -> Path:
    """val/ with four solid PNGs (ILSVRC2012_val_0000000{1..4}), and vasudevan/human_accuracy_v3.0.0.json holding
    `labels` (a dict is written as JSON, a string as is, None: no file)."""
    classes = E.DataRoots.full(root).classes
    for j in range(4):
        path = root / "val" / classes[j] / f"ILSVRC2012_val_{j + 1:08d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((20, 20, 3), round(255 * j / 3), dtype=np.uint8)).save(path)
    if labels is not None:
        (root / "vasudevan").mkdir(exist_ok=True)
        text = labels if isinstance(labels, str) else json.dumps(labels)
        (root / "vasudevan" / "human_accuracy_v3.0.0.json").write_text(text)
    return root


def labels(classes) -> dict:
    """Vasudevan et al.'s release (Shankar et al.'s schema, wnids, + "imagenet_m"). Val image j + 1 is in class j's
    folder. Image 1: top-1 in correct (hit in (a) and (b)). Image 2: top-1 only unclear (miss in (a), hit in (b);
    ImageNet-M counts it right). Image 3: problematic (skipped). Image 4: top-1 wrong (a miss; an ImageNet-M
    mistake). Image 99 is not in this val, and a non-val name is skipped."""
    v = "ILSVRC2012_val_{:08d}.JPEG".format
    c = [classes[k] for k in range(1000)]
    return {"initial_annots": {v(1): {"correct": [c[PRED[0]], c[7]], "unclear": [], "wrong": []},
                               v(2): {"correct": [c[3]], "unclear": [c[PRED[1]]], "wrong": []},
                               v(3): {"correct": [c[PRED[2]]], "unclear": [], "wrong": []},
                               v(4): {"correct": [c[20]], "unclear": [], "wrong": [c[PRED[3]]]},
                               v(99): {"correct": [c[1]], "unclear": [], "wrong": []},
                               "n01440764_10026.JPEG": {"correct": [c[0]]}},
            "problematic_images": {v(3): "blurry"},
            "imagenet_m": [v(2), v(4)]}


def test_metric_matches_a_hand_computed_answer(tmp_path):
    classes = E.DataRoots.full(tmp_path).classes
    roots = E.DataRoots.full(fake_full_root(tmp_path, labels(classes)))
    E.check_data(["vasudevan"], roots)
    res = E.evaluate("vasudevan", GreyLevelModel(), roots, input_size=16, progress=False)
    m = res.metrics
    # (a): images 1, 2, 4 scored (3 is problematic, 99 not in val), image 1 a hit
    assert m["n_scored"] == 3 and m["top1"] == pytest.approx(100 / 3)
    # (b): correct | unclear per original class (classes 0, 1, 3: one image each): hits for images 1 and 2
    assert m["top1_unclear_classavg"] == pytest.approx(200 / 3)
    # ImageNet-M: image 2 (top-1 unclear: right), image 4 (wrong: a major mistake)
    assert m["n_imagenet_m"] == 2 and m["imagenet_m_mistakes"] == 1
    assert m["imagenet_m_acc"] == pytest.approx(50.0) and m["imagenet_m_err"] == pytest.approx(50.0)
    assert res.dataset["size"] == 3 and res.outcomes["top1"]["n"] == 3 and res.outcomes["imagenet_m_acc"]["n"] == 2


def test_cli_runs_it_at_full_scale_and_writes_a_record(tmp_path, capsys):
    classes = E.DataRoots.full(tmp_path / "data").classes
    root = fake_full_root(tmp_path / "data", labels(classes))
    from relabel.checkpoint import save_model
    torch.manual_seed(0)
    ck = save_model(timm.create_model("resnet18", num_classes=1000, **TINY_KW), tmp_path / "tiny.safetensors",
                    arch="resnet18", model_kwargs=TINY_KW)
    records = tmp_path / "records.jsonl"
    assert main(["--ckpt", str(ck), "--scale", "full", "--data-root", str(root), "--suite", "vasudevan",
                 "--input-size", "16", "--records", str(records), "--no-progress", "--device", "cpu"],
                prog="eval_real/run.py", description="", suites=E.EVAL_REAL_SUITES) == 0
    rec = json.loads(records.read_text().splitlines()[0])
    assert rec["evaluator"] == "vasudevan" and rec["metrics"]["n_scored"] == 3 and rec["scale"] == "full"
    assert "vasudevan" in capsys.readouterr().out


def _one_sentence(text: str) -> None:
    assert "\n" not in text and text.endswith(".") and "Traceback" not in text


W = "n01440764"  # a wnid of the 1,000 (class 0)
V1, V2, V9 = ("ILSVRC2012_val_{:08d}.JPEG".format(i) for i in (1, 2, 9))


@pytest.mark.parametrize("content, words", [
    (None, ["vasudevan/human_accuracy_v3.0.0.json", "does not exist", "imagenet_m"]),
    ("{not json", ["is not JSON"]),
    ({"images": {}, "imagenet_m": []}, ['"initial_annots"', "Shankar"]),
    ({"initial_annots": {V1: {"correct": [W], "unclear": None}}, "imagenet_m": [V1]}, [V1, "not lists"]),
    ({"initial_annots": {V1: {"correct": ["n99999999"]}}, "imagenet_m": [V1]}, ["n99999999", "class list"]),
    ({"initial_annots": {V1: {"correct": [W]}}}, ['"imagenet_m"', "Shankar et al.'s original file"]),
    ({"initial_annots": {V1: {"correct": [W]}}, "imagenet_m": [V2]}, ["ImageNet-M", "no label sets"]),
    ({"initial_annots": {V1: {"correct": [W]}, V9: {"correct": [W]}}, "imagenet_m": [V9]},
     ["ImageNet-M", "not in val", "ILSVRC2012_val_00000009"]),
], ids=["missing", "not json", "wrong shape", "null label set", "class outside the list", "shankar's file",
        "imagenet_m without labels", "imagenet_m not in val"])
def test_layout_check_names_a_missing_or_malformed_file_in_one_sentence(tmp_path, content, words):
    roots = E.DataRoots.full(fake_full_root(tmp_path, content), given_by="cli")
    with pytest.raises(E.DatasetMissing) as err:
        E.check_data(["vasudevan"], roots)
    msg = str(err.value)
    _one_sentence(msg)
    for w in words + ["--data-root"]:
        assert w in msg, (w, msg)
    # the evaluator itself refuses the same file with one sentence too (a run that skipped the check)
    with pytest.raises(E.EvalError) as err:
        E.evaluate("vasudevan", GreyLevelModel(), roots, input_size=16, progress=False)
    _one_sentence(str(err.value))


def test_refuses_at_mini_with_exit_1_and_one_sentence(tmp_path, capsys):
    # before any checkpoint loads or world builds: neither exists here
    rc = main(["--ckpt", str(tmp_path / "none.safetensors"), "--scale", "mini", "--data-root", str(tmp_path),
               "--suite", "vasudevan"], prog="eval_real/run.py", description="", suites=E.EVAL_REAL_SUITES)
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err == f"error: {E.UNIT_OF['vasudevan'].mini_refusal}"
    _one_sentence(err)
    assert "--scale full" in err and "ReaL" in err
    # not in the default suites, which still run at mini; the robustness CLI does not take it
    assert "vasudevan" not in E.NAMES and "vasudevan" not in E.EVAL_REAL_SUITES
    assert main(["--ckpt", str(tmp_path / "none.safetensors"), "--suite", "vasudevan"], prog="robustness/run.py",
                description="", suites=E.ROBUSTNESS_SUITES, robustness=True) == 1
    assert "unknown suite ['vasudevan']" in capsys.readouterr().err


def test_unit_is_registered_from_one_line():
    u = E.UNIT_OF["vasudevan"]
    assert "vasudevan" in E.UNIT_MODULES and E.REGISTRY["vasudevan"] is u.evaluators["vasudevan"]
    assert E.SUITES["vasudevan"] == ("vasudevan",) and "vasudevan" in E.LAYOUTS
    # in the tree, marked optional; not in the folder list the paper's missing-data errors quote
    assert "vasudevan/human_accuracy_v3.0.0.json (optional)" in E.FULL_TREE and "vasudevan/" not in E.FULL_FOLDERS
