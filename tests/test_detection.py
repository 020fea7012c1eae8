"""Table 9 machinery: our timm checkpoint as an mmdet backbone, the generated mmdet config, a 2-iteration run."""
import json
from pathlib import Path

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from relabel.checkpoint import CheckpointError, load_model, save_model

TINY = {"layers": (1, 1, 1, 1), "channels": (8, 8, 16, 16), "stem_width": 8}


def tiny_backbone(path: Path, arch="resnet50", seed=0, **kw) -> Path:
    torch.manual_seed(seed)
    model = timm.create_model(arch, num_classes=5, **{**TINY, **kw})
    for m in model.modules():  # non-trivial BatchNorm statistics, so loading them is visible in the outputs
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return save_model(model, path, arch=arch, model_kwargs={**TINY, **kw}, num_classes=5)


def tiny_coco(root: Path, n_train=4, n_val=2) -> Path:
    """A hand-built COCO instances split: bright rectangles on noise, category ids 2 and 7 (non-contiguous),
    masks as polygons, images 64×48 and 48×64."""
    rng = np.random.default_rng(0)
    cats = [{"id": 2, "name": "square"}, {"id": 7, "name": "bar"}]
    for split, n in (("train", n_train), ("val", n_val)):
        (root / split).mkdir(parents=True)
        images, anns = [], []
        for i in range(n):
            h, w = (48, 64) if i % 2 else (64, 48)
            img = rng.integers(0, 60, (h, w, 3), dtype=np.uint8)
            for j, (cat, (x, y, bw, bh)) in enumerate([(2, (4, 6, 16, 16)), (7, (26, 20, 10, 24))]):
                img[y:y + bh, x:x + bw] = (220, 40, 40) if cat == 2 else (40, 220, 40)
                poly = [x, y, x + bw, y, x + bw, y + bh, x, y + bh]
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cat, "bbox": [x, y, bw, bh],
                             "area": bw * bh, "iscrowd": 0, "segmentation": [[float(v) for v in poly]]})
            Image.fromarray(img).save(root / split / f"{i + 1:06d}.png")
            images.append({"id": i + 1, "file_name": f"{i + 1:06d}.png", "height": h, "width": w})
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(
            json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return root


def test_adapter_feature_maps_equal_timm_intermediates(tmp_path):
    from transfer.timm_backbone import TimmBackbone
    ckpt = tiny_backbone(tmp_path / "bb.safetensors")
    adapter = TimmBackbone(str(ckpt), expect_arch="resnet50").eval()
    reference = load_model(ckpt).eval()
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        ours = adapter(x)
        theirs = reference.forward_intermediates(x, indices=(1, 2, 3, 4), intermediates_only=True)
    assert [f.shape[1] for f in ours] == adapter.channels == [32, 32, 64, 64]
    assert [f.shape[-2:] for f in ours] == [(16, 12), (8, 6), (4, 3), (2, 2)]  # strides 4, 8, 16, 32
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)
    adapter.init_weights()  # mmengine calls this after building: it must not re-initialise our weights
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(adapter(x), ours))


def test_adapter_freezes_stem_and_first_stage_and_batchnorm(tmp_path):
    from transfer.timm_backbone import TimmBackbone
    adapter = TimmBackbone(str(tiny_backbone(tmp_path / "bb.safetensors")), frozen_stages=1).train()
    body = adapter.body
    assert not any(p.requires_grad for m in (body.conv1, body.bn1, body.layer1) for p in m.parameters())
    assert all(p.requires_grad for p in body.layer2.parameters())
    assert not any(m.training for m in body.modules() if isinstance(m, torch.nn.BatchNorm2d))  # norm_eval


def test_wrong_architecture_gives_clear_error(tmp_path):
    from transfer.backbone import open_backbone
    from transfer.timm_backbone import TimmBackbone
    other = tiny_backbone(tmp_path / "r18.safetensors", arch="resnet18")
    with pytest.raises(CheckpointError, match=r"holds a timm 'resnet18'.*fine-tunes a 'resnet50'"):
        open_backbone(other, "resnet50")
    with pytest.raises(CheckpointError, match="resnet18"):
        TimmBackbone(str(other), expect_arch="resnet50")
    # weights that do not fit the architecture named in the checkpoint's own metadata
    bad = tmp_path / "bad.safetensors"
    model = timm.create_model("resnet50", num_classes=5, **{**TINY, "channels": (8, 8, 16, 32)})
    save_model(model, bad, arch="resnet50", model_kwargs=TINY, num_classes=5)
    with pytest.raises(CheckpointError, match="does not fit the timm 'resnet50'.*shape mismatch"):
        open_backbone(bad, "resnet50")
    with pytest.raises(CheckpointError, match="does not exist"):
        open_backbone(tmp_path / "missing.safetensors")


def test_mmdet_config_is_generated_from_ours(tmp_path):
    from transfer.detection import get_config, mmdet_config
    coco = tiny_coco(tmp_path / "coco")
    ckpt = tiny_backbone(tmp_path / "bb.safetensors")
    cfg = get_config("mini", "mask_rcnn", data_root=str(coco), image_scale=(96, 72), fpn_channels=16)
    mm = mmdet_config(cfg, ckpt, tmp_path / "wd", seed=3)
    assert mm.model.backbone.type == "TimmBackbone" and mm.model.backbone.checkpoint == str(ckpt)
    assert mm.model.neck.in_channels == [32, 32, 64, 64] and mm.model.neck.out_channels == 16
    assert mm.model.roi_head.bbox_head.num_classes == mm.model.roi_head.mask_head.num_classes == 2
    assert mm.train_dataloader.dataset.metainfo["classes"] == ("square", "bar")
    assert [t["scale"] for t in mm.train_dataloader.dataset.pipeline if t["type"] == "Resize"] == [(96, 72)]
    assert mm.test_evaluator.metric == ["bbox", "segm"] and mm.randomness.seed == 3
    assert mm.train_cfg.max_iters == cfg.max_iters and mm.val_cfg is None
    with pytest.raises(ValueError, match="unknown DetectionConfig option"):
        get_config("mini", "mask_rcnn", fpn_channel=16)
    full = get_config("full", "faster_rcnn")
    assert full.image_scale == (1200, 800) and full.epochs == 12 and full.lr == 0.02 and full.batch_size == 16


@pytest.mark.slow
@pytest.mark.parametrize("detector", ["faster_rcnn", "mask_rcnn"])
def test_two_iteration_train_and_coco_eval(tmp_path, detector):
    from transfer.detection import get_config, run_detection
    coco = tiny_coco(tmp_path / "coco")
    ckpt = tiny_backbone(tmp_path / "bb.safetensors")
    cfg = get_config("mini", detector, data_root=str(coco), max_iters=2, batch_size=2, warmup_iters=1,
                     ckpt_every=2, log_every=1, fpn_channels=16, roi_fc_channels=32, mask_channels=16)
    res = run_detection(cfg, ckpt, tmp_path / "wd", seed=0, quiet=True)
    want = {"bbox_ap"} | ({"segm_ap"} if detector == "mask_rcnn" else set())
    assert want <= set(res.metrics)
    assert all(0.0 <= res.metrics[k] <= 100.0 for k in want)
    assert (res.train_size, res.val_size, res.resumed) == (4, 2, False)
    assert (tmp_path / "wd" / "mmdet" / "iter_2.pth").is_file()
    assert 0 < res.train_wall_s < res.wall_s
    # a second call finds the finished run's own checkpoint (weights-only load with the allow-list) and
    # only re-evaluates; its wall time still counts the first call's training
    again = run_detection(cfg, ckpt, tmp_path / "wd", seed=0, quiet=True)
    assert again.resumed and again.metrics == res.metrics
    assert again.train_wall_s >= 0.5 * res.train_wall_s and again.wall_s > again.train_wall_s


@pytest.mark.slow
def test_diverged_training_stops_with_a_clear_error(tmp_path):
    from transfer.detection import get_config, run_detection
    coco = tiny_coco(tmp_path / "coco")
    cfg = get_config("mini", "faster_rcnn", data_root=str(coco), max_iters=20, batch_size=2, warmup_iters=1,
                     lr=1e8, clip_grad_norm=0.0, fpn_channels=16, roi_fc_channels=32)
    with pytest.raises(FloatingPointError, match="training diverged .* lower lr"):
        run_detection(cfg, tiny_backbone(tmp_path / "bb.safetensors"), tmp_path / "wd", seed=0, quiet=True)


def test_training_wall_time_is_summed_over_resumptions(monkeypatch):
    """The hook keeps the training time in each checkpoint's meta; a resumed run adds its own time to it."""
    from transfer import mm_hooks
    clock = iter([100.0, 130.0, 500.0, 520.0])  # run 1: starts, checkpoints 30 s in; run 2: starts, ends 20 s in
    monkeypatch.setattr(mm_hooks.time, "time", lambda: next(clock))
    first = mm_hooks.TrainWallTimeHook()
    first.before_train(None)
    ckpt = {"meta": {"iter": 400}}
    first.before_save_checkpoint(None, ckpt)
    assert ckpt["meta"][first.META_KEY] == 30.0
    resumed = mm_hooks.TrainWallTimeHook()  # killed after the checkpoint; a new process resumes from it
    resumed.after_load_checkpoint(None, ckpt)
    resumed.before_train(None)
    resumed.after_train(None)
    assert (resumed.before, resumed.total) == (30.0, 50.0)


def test_resuming_with_another_config_is_refused(tmp_path):
    from transfer.detection import get_config, run_detection
    coco = tiny_coco(tmp_path / "coco")
    ckpt = tiny_backbone(tmp_path / "bb.safetensors")
    stamp = tmp_path / "wd" / "mmdet" / "transfer_config.json"
    stamp.parent.mkdir(parents=True)
    stamp.write_text("{}")  # as left by an earlier run with other settings
    cfg = get_config("mini", "faster_rcnn", data_root=str(coco), max_iters=2)
    with pytest.raises(RuntimeError, match="another config or backbone checkpoint; delete it"):
        run_detection(cfg, ckpt, tmp_path / "wd", seed=0, quiet=True)


def test_a_stale_detection_workdir_is_set_aside_under_make(tmp_path, monkeypatch):
    """on_stale='set_aside' (the launcher's choice) moves the old work dir away and builds a fresh run."""
    from transfer import detection
    coco = tiny_coco(tmp_path / "coco")
    ckpt = tiny_backbone(tmp_path / "bb.safetensors")
    work = tmp_path / "wd" / "mmdet"
    work.mkdir(parents=True)
    (work / "transfer_config.json").write_text("{}")
    (work / "last_checkpoint").write_text(str(work / "iter_400.pth"))  # would be resumed into if left in place

    class Built(Exception):
        pass

    def stop(mm):
        assert mm.resume is False and not (work / "last_checkpoint").exists()
        raise Built
    monkeypatch.setattr("mmengine.runner.Runner.from_cfg", stop)
    cfg = detection.get_config("mini", "faster_rcnn", data_root=str(coco), max_iters=2)
    with pytest.raises(Built):
        detection.run_detection(cfg, ckpt, tmp_path / "wd", seed=0, quiet=True, on_stale="set_aside")
    (moved,) = (tmp_path / "wd").glob("mmdet.stale-*")
    assert (moved / "last_checkpoint").exists()
