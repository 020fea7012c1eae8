"""Evaluation data checked before a run (issue #14 item 8) and the small CLI items (item 10): record names, a
labelled partial mCE, --c-root's stated default, and detection that finds nothing scoring AP 0."""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from relabel import evaluators as E
from relabel import records as R
from relabel.checkpoint import save_model
from relabel.evaluators.base import require
from relabel.evaluators.cli import build_parser, main
from relabel.evaluators import LAYOUTS
from relabel.evaluators.roots import timm_info

SMALL = {"layers": (1, 1, 1, 1), "channels": (8, 8, 16, 16), "stem_width": 8}


def _jpeg(path: Path, seed: int, size=(40, 40)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(path)


def full_tree(root: Path) -> Path:
    """The smallest full-scale data root in the real layouts: two classes (ImageNet indices 0 and 6, which is also
    an ImageNet-A class), one image per folder, every ImageNet-C cell."""
    classes = E.DataRoots.full(root).classes
    a_wnid = timm_info("imagenet_a_synsets.txt").read_text().split()[0]
    wnids = [classes[0], a_wnid]
    for i, w in enumerate(wnids):
        _jpeg(root / "val" / w / f"ILSVRC2012_val_{i + 1:08d}.JPEG", i)
        for v in E.V2_VARIANTS:
            _jpeg(root / "imagenetv2" / f"imagenetv2-{v}-format-val" / str(classes.index(w)) / f"h{i}.jpeg", i)
        for c in E.CORRUPTIONS:
            for s in E.SEVERITIES:
                _jpeg(root / "imagenet-c" / c / str(s) / w / f"ILSVRC2012_val_{i + 1:08d}.JPEG", i)
    _jpeg(root / "imagenet-a" / a_wnid / "a0.jpg", 9)
    shankar = {"initial_annots": {"ILSVRC2012_val_00000001.JPEG": {"correct": [wnids[0]], "unclear": [],
                                                                   "wrong": []}}}
    (root / "shankar").mkdir()
    (root / "shankar" / "human_accuracy_v3.0.0.json").write_text(json.dumps(shankar))
    bgc = root / "bg_challenge"
    for variant in ("original", "only_bg_t", "mixed_same", "mixed_rand"):
        _jpeg(bgc / variant / "val" / "00_dog" / "img0.JPEG", 3, size=(32, 32))
    (bgc / "fg_mask" / "val" / "00_dog").mkdir(parents=True)
    np.save(bgc / "fg_mask" / "val" / "00_dog" / "img0.npy", np.ones((32, 32), dtype=bool))
    (bgc / "in_to_in9.json").write_text(json.dumps({"0": 0, str(classes.index(a_wnid)): 0}))
    return root


# (what breaks, the evaluator that reads it, words the error must hold)
DAMAGE = {
    "shankar json missing": (lambda r: shutil.rmtree(r / "shankar"), "shankar",
                             ["shankar/human_accuracy_v3.0.0.json", LAYOUTS["shankar"]]),
    "imagenetv2 missing": (lambda r: shutil.rmtree(r / "imagenetv2"), "v2-top-images",
                           ["imagenetv2-top-images-format-val", LAYOUTS["v2"]]),
    "v2 folders without images": (lambda r: [p.unlink() for p in (r / "imagenetv2").rglob("*.jpeg")],
                                  "v2-matched-frequency", ["holds no images", LAYOUTS["v2"]]),
    "v2 folder not an index": (lambda r: (r / "imagenetv2" / "imagenetv2-threshold0.7-format-val" / "n01").mkdir(),
                               "v2-threshold0.7", ["['n01']", "not class indices"]),
    "imagenet-a missing": (lambda r: shutil.rmtree(r / "imagenet-a"), "imagenet-a", ["imagenet-a", "200 wnid"]),
    "imagenet-c cell missing": (lambda r: shutil.rmtree(r / "imagenet-c" / "frost" / "3"), "imagenet-c",
                                ["ImageNet-C frost/3", "frost/3", LAYOUTS["imagenet-c"]]),
    "imagenet-c cell with a stray folder": (lambda r: (r / "imagenet-c" / "frost" / "2" / "misc").mkdir(),
                                            "imagenet-c", ["ImageNet-C frost/2", "['misc']", "not in the class list"]),
    "bgc class map missing": (lambda r: (r / "bg_challenge" / "in_to_in9.json").unlink(), "bgc",
                              ["in_to_in9.json", LAYOUTS["bgc"]]),
    "bgc foreground mask missing": (lambda r: shutil.rmtree(r / "bg_challenge" / "fg_mask" / "val" / "00_dog"),
                                    "bgc", ["fg_mask/val/00_dog/img0.npy"]),
    "val folder not a class": (lambda r: (r / "val" / "extras").mkdir(), "val", ["extras"]),
    "val file without its ReaL index": (lambda r: next((r / "val").rglob("*.JPEG")).rename(
        r / "val" / "n01440764" / "photo.JPEG"), "real", ["ImageNet-ReaL", "photo.JPEG"]),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_check_names_what_a_run_would_miss_before_it_starts(tmp_path, damage):
    root = full_tree(tmp_path / "imagenet")
    roots = E.DataRoots.full(root)
    E.check_data(E.NAMES, roots)  # the complete tree passes, for every evaluator
    breaks, evaluator, words = DAMAGE[damage]
    breaks(root)
    readers = {"val": ("val", "real", "shankar", "fgsm"), "v2": tuple(f"v2-{v}" for v in E.V2_VARIANTS)}
    affected = readers["val" if damage.startswith("val") else "v2" if evaluator.startswith("v2") else ""] \
        if damage.startswith("val") or evaluator.startswith("v2") else (evaluator,)
    E.check_data([n for n in E.NAMES if n not in affected], roots)  # the damage is only its readers' business
    with pytest.raises(FileNotFoundError) as err:  # make / results.make print it as one `error:` line
        E.check_data([evaluator], roots)
    msg = str(err.value)
    for w in words:
        assert w in msg
    assert "\n" not in msg and msg.endswith(".")


def test_missing_data_error_names_the_knob_of_the_entry_point(tmp_path, monkeypatch):
    root = tmp_path / "imagenet"
    root.mkdir()
    cli = E.DataRoots.for_scale("full", root)  # what eval_real/run.py and robustness/run.py build
    with pytest.raises(FileNotFoundError, match="pass --data-root DIR") as err:
        E.check_data(["shankar"], cli)
    assert "IMAGENET_ROOT" not in str(err.value)
    # make / results.make reach the evaluators through pretrain's data roots: IMAGENET_ROOT, never --data-root
    from pretrain import artifacts as A
    from pretrain.config import get_config
    monkeypatch.setenv("IMAGENET_ROOT", str(root))
    made = A.data_roots(get_config("full"))
    assert made.val == root / "val"
    for fail in (lambda: E.check_data(["v2-top-images"], made),  # before training
                 lambda: require(made.shankar_json, "Shankar et al. label", "shankar", made, True)):  # evaluator
        with pytest.raises(FileNotFoundError, match="set IMAGENET_ROOT to the folder that holds val/") as err:
            fail()
        assert "--data-root" not in str(err.value)
    with pytest.raises(FileNotFoundError, match="imagenetv2-top-images-format-val .*set IMAGENET_ROOT"):
        E.check_data(["v2-top-images"], made)  # what a run calls with the evaluators it will write
    with pytest.raises(ValueError, match="unknown evaluator"):
        E.check_data(["cost"], made)


def _tiny_ckpt(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=1000, **SMALL)
    return save_model(model, path, arch="resnet18", model_kwargs=SMALL, num_classes=1000,
                      extra={"eval_input_size": 32, "eval_crop_ratio": 1.0})


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_records_are_named_by_the_real_suffix_and_a_model_file_by_its_folders(tmp_path, isolated_runs):
    root = full_tree(tmp_path / "imagenet")
    versioned = _tiny_ckpt(tmp_path / "rn50_relabel_78.9.safetensors")
    trained = _tiny_ckpt(isolated_runs / "full" / "pretrain" / "resnet50" / "relabel" / "seed0" / "model.safetensors")
    records = tmp_path / "records.jsonl"
    for ckpt in (versioned, trained):
        assert main(["--ckpt", str(ckpt), "--scale", "full", "--data-root", str(root), "--suite", "val",
                     "--records", str(records), "--no-progress", "--device", "cpu"],
                    prog="eval", description="", suites=E.EVAL_REAL_SUITES) == 0
    assert [r["experiment"] for r in _records(records)] == ["ckpt/rn50_relabel_78.9",
                                                            "ckpt/pretrain/resnet50/relabel/seed0"]
    from relabel.evaluators.cli import default_experiment
    assert default_experiment("/w/rn50_relabel_78.9.pth", "full") == "ckpt/rn50_relabel_78.9"
    assert default_experiment("/w/resnet50.a1_in1k.pth.tar", "full") == "ckpt/resnet50.a1_in1k"
    assert default_experiment("/w/exp/a/b/c/seed3/model.pth", "full") == "ckpt/a/b/c/seed3"  # outside runs/
    assert R.default_records_path("full").parent.parent == isolated_runs


def test_partial_mce_is_labelled_in_print_and_record(tmp_path, capsys):
    root = full_tree(tmp_path / "imagenet")
    ckpt = _tiny_ckpt(tmp_path / "r18.safetensors")
    records = tmp_path / "records.jsonl"
    assert main(["--ckpt", str(ckpt), "--scale", "full", "--data-root", str(root), "--suite", "c",
                 "--c-corruptions", "frost,fog,snow", "--c-severities", "1,2", "--records", str(records),
                 "--no-progress", "--device", "cpu"],
                prog="robustness", description="", suites=E.ROBUSTNESS_SUITES, robustness=True) == 0
    out = capsys.readouterr().out
    scope = "mCE over 3 of 15 corruptions at severities 1,2 of 1-5, not the benchmark's"
    assert out.count(scope) == 2  # the evaluator's line and the summary table
    (rec,) = _records(records)
    assert rec["config"]["c_mce_scope"] == scope and rec["config"]["c_mce_complete"] is False
    assert rec["metrics"]["mce_n_corruptions"] == 3
    from relabel.evaluators.corruptions import mce_scope
    assert mce_scope(E.CORRUPTIONS, E.SEVERITIES)["c_mce_complete"] is True
    assert mce_scope(E.CORRUPTIONS, (1, 2, 3, 4))["c_mce_complete"] is False


def test_c_root_help_states_what_the_code_does(tmp_path):
    text = " ".join(build_parser("robustness", "", E.ROBUSTNESS_SUITES, True).format_help().split())
    assert "default at --scale full: <data-root>/imagenet-c when that folder exists, else generated on the fly" \
        in text
    (tmp_path / "imagenet-c").mkdir()
    assert E.DataRoots.full(tmp_path).imagenet_c == tmp_path / "imagenet-c"  # what the help says
    assert E.DataRoots.full(tmp_path / "elsewhere").imagenet_c is None


@pytest.mark.parametrize("detector", ["faster_rcnn", "mask_rcnn"])
def test_detection_that_finds_nothing_scores_zero_ap(tmp_path, detector):
    pytest.importorskip("mmdet")
    from mmdet.registry import METRICS

    from transfer.detection import get_config, mmdet_config
    coco = tmp_path / "coco"
    (coco / "annotations").mkdir(parents=True)
    images = [{"id": i, "file_name": f"{i}.png", "height": 48, "width": 64} for i in (1, 2)]
    boxes = [[4, 6, 16, 16], [26, 20, 10, 24]]
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": (2, 7)[i], "bbox": b, "area": b[2] * b[3],
             "iscrowd": 0, "segmentation": [[b[0], b[1], b[0] + b[2], b[1], b[0] + b[2], b[1] + b[3], b[0],
                                              b[1] + b[3]]]} for i, b in enumerate(boxes)]
    cats = [{"id": 2, "name": "square"}, {"id": 7, "name": "bar"}]
    for split in ("train", "val"):
        (coco / "annotations" / f"instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats}))
    torch.manual_seed(0)
    backbone = save_model(timm.create_model("resnet50", num_classes=5, **SMALL), tmp_path / "bb.safetensors",
                          arch="resnet50", model_kwargs=SMALL, num_classes=5)
    cfg = get_config("mini", detector, data_root=str(coco))
    mm = mmdet_config(cfg, backbone, tmp_path / "wd", seed=0)

    def evaluate(found: bool) -> dict:
        metric = METRICS.build(mm.test_evaluator)
        metric.dataset_meta = {"classes": ("square", "bar")}
        for i, b in enumerate(boxes):
            box = torch.tensor([[b[0], b[1], b[0] + b[2], b[1] + b[3]]], dtype=torch.float32)
            mask = torch.zeros(1, 48, 64, dtype=torch.bool)
            mask[0, b[1]:b[1] + b[3], b[0]:b[0] + b[2]] = True
            n = 1 if found else 0
            pred = {"bboxes": box[:n], "scores": torch.ones(n), "labels": torch.full((n,), i),
                    **({"masks": mask[:n]} if detector == "mask_rcnn" else {})}
            metric.process({}, [{"img_id": i + 1, "ori_shape": (48, 64), "pred_instances": pred}])
        return metric.evaluate(len(boxes))

    found = evaluate(True)  # the same metric scores real detections as mmdet does
    assert found["coco/bbox_mAP"] == 1.0
    nothing = evaluate(False)
    assert nothing.get("coco/bbox_mAP") == 0.0  # pycocotools' score of an empty result; mmdet alone returns {}
    from transfer.detection import coco_ap
    perfect, ap = coco_ap(found, cfg, tmp_path), coco_ap(nothing, cfg, tmp_path)
    assert perfect["bbox_ap"] == 100.0
    assert ap["bbox_ap"] == ap["bbox_ap50"] == 0.0
    if detector == "mask_rcnn":
        assert perfect["segm_ap"] == 100.0 and ap["segm_ap"] == 0.0
