"""Table 9: Faster / Mask R-CNN FPN on COCO from our backbones, through MMDetection, from one config of ours.

`get_config(scale, detector)` returns a frozen `DetectionConfig`; `mmdet_config(cfg, backbone, workdir, seed)`
turns it into an mmengine Config by taking MMDetection's own standard 1x recipe shipped inside the mmdet package
(`faster-rcnn_r50_fpn_1x_coco.py`, `mask-rcnn_r50_fpn_1x_coco.py`) and replacing only what this reproduction
decides: the backbone (our `TimmBackbone`, transfer/timm_backbone.py), the channel widths that follow from it,
the data, the image size, the schedule and the batch. No mm config file is copied into this repository.
`run_detection` trains with mmengine's Runner (resuming from its own checkpoints) and evaluates with mmdet's
CocoMetric, returning bbox AP (and mask AP) in percent, the paper's unit. A model that detects nothing on the whole
val set scores what pycocotools gives an empty result — AP 0 — with a warning, where mmdet's CocoMetric alone logs
"results ... empty" and returns no metrics (`coco_metric_type`).

Full scale is the paper's recipe: COCO 2017 train → val2017, SGD lr 0.02 for batch 16, 12 epochs with steps at
8 and 11, image size 1200×800 as the paper states (mmdet's default is 1333×800; `image_scale` is recorded).
Mini scale: the mini world's COCO split (48–64 px images, upscaled ×2), a 4× narrower FPN/RoI head, an
iteration budget of a few minutes on one CPU core per detector, mmengine's log at WARNING (one progress line of
ours every `log_every` iterations instead). A work dir resumes only into the same config and backbone weights;
the training wall time in the result is summed over resumptions (transfer/mm_hooks.py).
"""
from __future__ import annotations

import contextlib
import copy
import functools
import json
import os
import logging
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from relabel.configs import StrictConfig
from transfer.data import mini_world_dir

DETECTORS = {"faster_rcnn": "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py",
             "mask_rcnn": "mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py"}
COCO_METRIC = "CocoMetricEmptyIsZero"  # mmdet's CocoMetric that scores an empty result (see coco_metric_type)


@dataclass(frozen=True)
class DetectionConfig(StrictConfig):
    """One Table 9 column family (a detector) at one scale; its dict goes into every record."""
    detector: str  # 'faster_rcnn' (bbox AP) or 'mask_rcnn' (bbox and mask AP)
    data_root: str
    dataset: str = "coco2017"  # the name that goes into records
    world: str = ""  # mini: the generated world the split lives in (built on first use); full: ''
    train_ann: str = "annotations/instances_train2017.json"  # relative to data_root
    train_images: str = "train2017"
    val_ann: str = "annotations/instances_val2017.json"
    val_images: str = "val2017"
    backbone_arch: str = "resnet50"  # the checkpoint must hold this timm family (Table 9: ResNet-50)
    frozen_stages: int = 1  # stem + layer1 frozen, BatchNorm in eval mode: mmdet's ResNet-50 1x recipe
    norm_eval: bool = True
    image_scale: tuple = (1200, 800)  # (long, short) side limits, keep ratio; the paper: 1200×800
    flip_prob: float = 0.5
    batch_size: int = 16  # global (2 per GPU × 8 GPUs in the 1x recipe)
    lr: float = 0.02  # for `batch_size`
    momentum: float = 0.9
    weight_decay: float = 1e-4
    clip_grad_norm: float = 0.0  # > 0: clip the gradient's L2 norm (mmdet's recipes that clip use 35); 1x: none
    epochs: int = 12  # used when max_iters == 0
    max_iters: int = 0  # > 0: an iteration budget instead of epochs (mini)
    milestones: tuple = (8 / 12, 11 / 12)  # lr ×0.1 at these fractions of the schedule (1x: epochs 8, 11)
    warmup_iters: int = 500
    fpn_channels: int = 256
    roi_fc_channels: int = 1024
    mask_channels: int = 256
    anchor_scales: tuple = (8,)
    # RoIs of side ≥ 2^k · finest_scale are pooled from level k (capped at P5): FPN's k = 4 + log2(√(wh)/224),
    # 224 being the pretraining image size; mmdet's 56 is that rule for ImageNet-size pretraining
    roi_finest_scale: int = 56
    # RoIAlign: mmdet's default (mmcv kernel, adaptive sampling) or torchvision's kernel with a fixed sampling
    # ratio (Detectron's FPN configs use 2), ~3× faster on CPU, where the mmcv backward dominates a mini step
    roi_sampling_ratio: int = 0
    roi_align_torchvision: bool = False
    rpn_train_proposals: tuple = (2000, 1000)  # (pre-NMS, post-NMS) per image
    rpn_test_proposals: tuple = (1000, 1000)
    rpn_samples: int = 256
    rcnn_samples: int = 512
    min_size: int = 32  # training images with a side below this are skipped (mmdet's COCO default)
    workers: int = 2
    ckpt_every: int = 1  # epochs, or iterations when max_iters > 0
    log_every: int = 50
    # mmengine's own logging; 'WARNING' keeps its warnings and errors and drops the per-iteration INFO lines (our
    # one-line progress every `log_every` iterations remains)
    log_level: str = "INFO"

    def __post_init__(self):
        if self.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {sorted(DETECTORS)}, got '{self.detector}'")

    @property
    def metrics(self) -> tuple:
        return ("bbox", "segm") if self.detector == "mask_rcnn" else ("bbox",)




def get_config(scale: str, detector: str, **overrides) -> DetectionConfig:
    """Table 9 (paper: Faster 37.7 → 38.2 bbox AP; Mask 38.5 → 39.1 bbox AP, 34.7 → 35.2 mask AP)."""
    if scale == "full":
        cfg = DetectionConfig(detector, data_root=os.environ.get("COCO_ROOT", "/data/coco"))
    elif scale == "mini":
        world = mini_world_dir()
        # objects are 7-31 px (median 15): images ×2, anchors from 16 px, RoIs mapped to levels by the FPN rule
        # for 96 px "pretraining-size" objects (48 px × 2); heads ~4× narrower; 1,600 iterations of 4 images
        # (~11 epochs of the 600 training images) keep each detector at ~3-5 min on one CPU core; no flips, as in
        # the mini pretraining: the objects are digits, which a mirror turns into other shapes
        cfg = DetectionConfig(
            detector, data_root=str(world / "coco"), dataset=f"{world.name}/coco", world=str(world),
            train_ann="annotations/instances_train.json", train_images="train",
            val_ann="annotations/instances_val.json", val_images="val",
            image_scale=(128, 96), flip_prob=0.0, batch_size=4, lr=0.02, clip_grad_norm=35.0, max_iters=1600,
            warmup_iters=100, fpn_channels=64, roi_fc_channels=256, mask_channels=32, anchor_scales=(4,),
            roi_finest_scale=24,
            roi_sampling_ratio=2, roi_align_torchvision=True, rpn_train_proposals=(200, 100),
            rpn_test_proposals=(200, 100), rpn_samples=128, rcnn_samples=64, min_size=0, workers=0,
            ckpt_every=400, log_every=200, log_level="WARNING")
    else:
        raise ValueError(f"scale must be 'mini' or 'full', got '{scale}'")
    return cfg.replace(**overrides) if overrides else cfg


def class_names(ann_file: str | os.PathLike) -> tuple:
    """Category names in the annotation file's order (mmdet maps ids → labels in this order; ids have gaps)."""
    ann_file = Path(ann_file)
    if not ann_file.is_file():
        raise FileNotFoundError(f"COCO annotation file {ann_file} does not exist; generate the mini world "
                                "(python -m relabel.data --out data) or set COCO_ROOT to a COCO 2017 folder.")
    cats = json.loads(ann_file.read_text())["categories"]
    return tuple(c["name"] for c in cats)



def _load_results(coco, predictions):
    """`coco.loadRes(predictions)`, and for no predictions at all an empty result set over the same images and
    categories (pycocotools' loadRes reads predictions[0]; COCOeval scores the empty set: AP 0, −1 for an area
    range without ground truth)."""
    if len(predictions):
        return type(coco).loadRes(coco, predictions)
    from mmengine.logging import print_log
    print_log("the detector found nothing on the whole val set: COCO AP is 0 (no true positives), as pycocotools "
              "scores an empty result; check the training log (diverged or untrained model?)", logger="current",
              level=logging.WARNING)
    empty = type(coco)()
    empty.dataset = {"images": list(coco.dataset["images"]), "categories": copy.deepcopy(coco.dataset["categories"]),
                     "annotations": []}
    empty.createIndex()
    return empty


@functools.lru_cache(maxsize=1)
def coco_metric_type() -> str:
    """Registers, once, mmdet's CocoMetric with one change: an empty result (no detection on any val image) is
    scored by pycocotools like any other — AP 0 — instead of mmdet's "The testing results of the whole dataset is
    empty" and no metrics at all; everything else is mmdet's own evaluation."""
    from mmdet.evaluation import CocoMetric
    from mmdet.registry import METRICS

    class CocoMetricEmptyIsZero(CocoMetric):
        def compute_metrics(self, results: list) -> dict:
            api = self._coco_api  # set from ann_file in __init__, which mmdet_config always passes
            if api is not None and "loadRes" not in vars(api):
                api.loadRes = functools.partial(_load_results, api)
            return super().compute_metrics(results)

    METRICS.register_module(name=COCO_METRIC, module=CocoMetricEmptyIsZero, force=True)
    return COCO_METRIC


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def mmdet_config(cfg: DetectionConfig, backbone: str | os.PathLike, workdir: str | os.PathLike, seed: int):
    """mmdet's own 1x config for `cfg.detector` with our backbone, data, sizes and schedule filled in."""
    import mmdet
    from mmengine.config import Config

    import transfer.mm_hooks  # noqa: F401  (registers the wall-time and progress hooks in mmdet's HOOKS)
    from transfer.timm_backbone import TimmBackbone  # registers the adapter in mmdet's MODELS

    base = Path(mmdet.__file__).parent / ".mim" / "configs" / DETECTORS[cfg.detector]
    if not base.is_file():
        raise FileNotFoundError(f"mmdet's bundled config {base} is missing; reinstall mmdet 3.3 from its wheel.")
    mm = Config.fromfile(str(base))
    classes = class_names(Path(cfg.data_root) / cfg.val_ann)
    n = len(classes)
    channels = TimmBackbone(str(backbone), cfg.backbone_arch).channels  # the FPN's inputs follow our backbone
    m = mm.model
    m.backbone = dict(type="TimmBackbone", checkpoint=str(backbone), expect_arch=cfg.backbone_arch,
                      out_indices=(1, 2, 3, 4), frozen_stages=cfg.frozen_stages, norm_eval=cfg.norm_eval)
    m.neck.in_channels, m.neck.out_channels = list(channels), cfg.fpn_channels
    m.rpn_head.in_channels = m.rpn_head.feat_channels = cfg.fpn_channels
    m.rpn_head.anchor_generator.scales = list(cfg.anchor_scales)
    roi_layer = dict(sampling_ratio=cfg.roi_sampling_ratio, use_torchvision=cfg.roi_align_torchvision)
    m.roi_head.bbox_roi_extractor.update(out_channels=cfg.fpn_channels, finest_scale=cfg.roi_finest_scale)
    m.roi_head.bbox_roi_extractor.roi_layer.update(roi_layer)
    m.roi_head.bbox_head.update(in_channels=cfg.fpn_channels, fc_out_channels=cfg.roi_fc_channels, num_classes=n)
    if cfg.detector == "mask_rcnn":
        m.roi_head.mask_roi_extractor.update(out_channels=cfg.fpn_channels, finest_scale=cfg.roi_finest_scale)
        m.roi_head.mask_roi_extractor.roi_layer.update(roi_layer)
        m.roi_head.mask_head.update(in_channels=cfg.fpn_channels, conv_out_channels=cfg.mask_channels,
                                    num_classes=n)
    m.train_cfg.rpn.sampler.num = cfg.rpn_samples
    m.train_cfg.rpn_proposal.update(nms_pre=cfg.rpn_train_proposals[0], max_per_img=cfg.rpn_train_proposals[1])
    m.train_cfg.rcnn.sampler.num = cfg.rcnn_samples
    m.test_cfg.rpn.update(nms_pre=cfg.rpn_test_proposals[0], max_per_img=cfg.rpn_test_proposals[1])

    for pipe in (mm.train_pipeline, mm.test_pipeline):
        for t in pipe:
            if t["type"] == "Resize":
                t["scale"] = tuple(cfg.image_scale)
            if t["type"] == "RandomFlip":
                t["prob"] = cfg.flip_prob
    meta = dict(classes=classes)
    per_gpu = cfg.batch_size // _world_size()
    loader = dict(num_workers=cfg.workers, persistent_workers=cfg.workers > 0)
    mm.train_dataloader.update(batch_size=per_gpu, **loader)
    if cfg.max_iters:  # an iteration budget: one endless shuffled stream instead of restarted epochs
        mm.train_dataloader.sampler = dict(type="InfiniteSampler", shuffle=True)
    mm.train_dataloader.dataset.update(
        data_root=cfg.data_root, ann_file=cfg.train_ann, data_prefix=dict(img=cfg.train_images + "/"),
        metainfo=meta, filter_cfg=dict(filter_empty_gt=True, min_size=cfg.min_size), pipeline=mm.train_pipeline)
    mm.test_dataloader = mm.val_dataloader
    mm.test_dataloader.update(**loader)
    mm.test_dataloader.dataset.update(data_root=cfg.data_root, ann_file=cfg.val_ann,
                                      data_prefix=dict(img=cfg.val_images + "/"), metainfo=meta,
                                      pipeline=mm.test_pipeline)
    mm.test_evaluator = dict(type=coco_metric_type(), ann_file=str(Path(cfg.data_root) / cfg.val_ann),
                             metric=list(cfg.metrics), format_only=False)
    # evaluation happens once, on the final weights (never a best-epoch pick); no validation during training
    mm.val_dataloader = mm.val_evaluator = mm.val_cfg = None

    by_epoch = cfg.max_iters == 0
    length = cfg.epochs if by_epoch else cfg.max_iters
    mm.train_cfg = (dict(type="EpochBasedTrainLoop", max_epochs=cfg.epochs, val_interval=10 ** 9) if by_epoch
                    else dict(type="IterBasedTrainLoop", max_iters=cfg.max_iters, val_interval=10 ** 9))
    mm.param_scheduler = [
        dict(type="LinearLR", start_factor=0.001, by_epoch=False, begin=0, end=cfg.warmup_iters),
        dict(type="MultiStepLR", begin=0, end=length, by_epoch=by_epoch, gamma=0.1,
             milestones=[round(f * length) for f in cfg.milestones])]
    mm.optim_wrapper.optimizer.update(lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.clip_grad_norm > 0:
        mm.optim_wrapper.clip_grad = dict(max_norm=cfg.clip_grad_norm, norm_type=2)
    # a diverged run must stop with an error, not train on NaNs and evaluate to an empty result
    mm.custom_hooks = [dict(type="CheckInvalidLossHook", interval=10), dict(type="TrainWallTimeHook"),
                       dict(type="TransferProgressHook", interval=cfg.log_every, label=cfg.detector)]
    mm.auto_scale_lr = dict(enable=False, base_batch_size=cfg.batch_size)  # cfg.lr is already for cfg.batch_size
    mm.default_hooks.checkpoint = dict(type="CheckpointHook", interval=cfg.ckpt_every, by_epoch=by_epoch,
                                       max_keep_ckpts=1)
    mm.default_hooks.logger = dict(type="LoggerHook", interval=cfg.log_every)
    mm.log_level = cfg.log_level
    mm.log_processor = dict(type="LogProcessor", window_size=cfg.log_every, by_epoch=by_epoch)
    mm.default_hooks.visualization = dict(type="DetVisualizationHook", draw=False)
    mm.randomness = dict(seed=seed)
    mm.launcher = "pytorch" if _world_size() > 1 else "none"
    mm.work_dir = str(Path(workdir) / "mmdet")
    mm.resume = (Path(mm.work_dir) / "last_checkpoint").is_file()
    return mm


def own_checkpoint_globals():
    """A context in which torch ≥ 2.6's weights-only loader can read the checkpoints mmengine's Runner writes
    (docs/environment.md, pitfall 5). Weights-only loading stays on; only the types a Runner checkpoint holds are allowed,
    and only around our own `runner.train()`/`runner.test()`, whose sole torch.load is the resume from this run's
    work_dir (the backbone comes from safetensors). What an mmdet 3.3 / mmengine 0.10.7 checkpoint needs beyond
    torch's defaults (torch.serialization.get_unsafe_globals_in_checkpoint): HistoryBuffer (the message hub's
    logs), numpy's ndarray/dtype/_reconstruct/scalar and the dtype classes (Float64DType, Int64DType), and
    builtins.getattr, because each HistoryBuffer holds its statistics methods, which pickle references as
    getattr(HistoryBuffer, 'min'). getattr lets a file reach attributes of the objects it may build, but calling
    anything outside the allow-list stays refused."""
    import builtins
    import collections

    import numpy as np
    import torch
    from mmengine.logging.history_buffer import HistoryBuffer

    core = np._core if hasattr(np, "_core") else np.core
    dtypes = {type(np.dtype(t)) for t in ("float64", "float32", "float16", "int64", "int32", "uint8", "bool")}
    return torch.serialization.safe_globals([HistoryBuffer, builtins.getattr, collections.Counter, np.ndarray,
                                             np.dtype, core.multiarray._reconstruct, core.multiarray.scalar,
                                             *dtypes])


@dataclass
class DetectionResult:
    metrics: dict  # bbox_ap, bbox_ap50, ... (and segm_*) in %
    wall_s: float  # training summed over every resumption + this call's set-up and evaluation
    train_wall_s: float  # training alone, summed over every resumption
    train_size: int  # training images used (after mmdet's empty/small-image filter)
    val_size: int
    resumed: bool


def _raised_in(exc: BaseException, filename: str) -> bool:
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_filename.endswith(filename)


def run_detection(cfg: DetectionConfig, backbone: str | os.PathLike, workdir: str | os.PathLike, seed: int,
                  quiet: bool = False, on_stale: str = "refuse") -> DetectionResult:
    """Trains (or resumes) the detector and evaluates its final weights on val with mmdet's CocoMetric.
    `quiet`: no progress lines and mmengine at WARNING (tests). A work dir of another config or backbone is
    refused, or with on_stale='set_aside' moved aside (relabel.stamped.set_aside_stale)."""
    from mmengine.runner import Runner

    from relabel.records import config_hash, file_sha256
    from relabel.stamped import set_aside_stale
    from transfer.mm_hooks import TrainWallTimeHook

    # resuming is only sound with the same config and the same backbone weights (a backbone retrained in place,
    # e.g. under a new pretraining recipe, must not be resumed into)
    work = Path(workdir) / "mmdet"
    stamp = work / "transfer_config.json"
    ours = json.dumps({**cfg.to_dict(), "backbone": str(backbone), "backbone_sha256": file_sha256(backbone),
                       "seed": seed}, sort_keys=True, default=list)
    if stamp.is_file() and stamp.read_text() != ours:
        set_aside_stale(work, config_hash({"old": stamp.read_text()}), False,
                        "holds a detection run with another config or backbone checkpoint", on_stale=on_stale)
    mm = mmdet_config(cfg, backbone, workdir, seed)
    assert Path(mm.work_dir) == work
    # mmengine keeps one Visualizer per name in a process and hands it to the next Runner with that name: a name of
    # its own per run, or a second run in this process writes its vis_data into the first run's work dir (and fails
    # once that folder is gone)
    mm.visualizer.name = f"visualizer-{uuid.uuid4().hex}"
    stamp.parent.mkdir(parents=True, exist_ok=True)
    stamp.write_text(ours)
    if quiet:
        mm.log_level = "WARNING"
        for h in mm.custom_hooks:
            if h["type"] == "TransferProgressHook":
                h["interval"] = 0
    t0 = time.time()
    runner = Runner.from_cfg(mm)  # mmengine's logger binds to the real stdout here, so its warnings stay visible
    # below INFO, pycocotools' prints (annotation loading, the evaluation table) go to a file in the work dir
    prints = (open(Path(mm.work_dir) / "stdout.log", "a") if mm.log_level != "INFO"
              else contextlib.nullcontext(sys.stdout))
    with prints as out, contextlib.redirect_stdout(out), own_checkpoint_globals():
        try:
            runner.train()
        except AssertionError as e:
            if not _raised_in(e, "checkloss_hook.py"):  # mmdet's CheckInvalidLossHook asserts with no message
                raise
            raise FloatingPointError(
                f"{cfg.detector} training diverged (loss NaN/inf at iteration {runner.iter}); lower lr (now "
                f"{cfg.lr}) and delete {mm.work_dir} so the run starts over") from None
        raw = runner.test()
    timer = next(h for h in runner.hooks if isinstance(h, TrainWallTimeHook))
    # this call's time, with its training part replaced by the training time summed over every resumption
    wall = time.time() - t0 - (timer.total - timer.before) + timer.total
    sizes = len(runner.train_dataloader.dataset), len(runner.test_dataloader.dataset)
    return DetectionResult(coco_ap(raw, cfg, mm.work_dir), wall, timer.total, *sizes, resumed=bool(mm.resume))


def coco_ap(raw: dict, cfg: DetectionConfig, work_dir) -> dict:
    """AP in % (bbox_ap, bbox_ap50, ..., and segm_* for Mask R-CNN) from the evaluator's `coco/<kind>_mAP...`."""
    out = {}
    for kind in cfg.metrics:
        for key, name in (("mAP", "ap"), ("mAP_50", "ap50"), ("mAP_75", "ap75"), ("mAP_s", "ap_small"),
                          ("mAP_m", "ap_medium"), ("mAP_l", "ap_large")):
            v = raw.get(f"coco/{kind}_{key}")
            if v is not None and v >= 0:  # pycocotools gives -1 for an empty size range
                out[f"{kind}_{name}"] = round(100.0 * float(v), 2)  # mmdet rounds AP to 3 decimals
    missing = [f"{kind}_ap" for kind in cfg.metrics if f"{kind}_ap" not in out]
    if missing:  # no detections score 0 (coco_metric_type); this is an evaluation that failed some other way
        raise RuntimeError(f"{cfg.detector} evaluation produced no {', '.join(missing)}; see the log in {work_dir}")
    return out
