"""Registers Tables 8 and 9 with the launcher: fine-grained grids and Faster/Mask R-CNN from our two backbones.

`transfer/finegrained/<task>/<baseline|relabel>` (evaluator 'grid': `top1_best_on_test` = the paper's protocol,
`top1_selected_on_holdout` = the honest one) and `transfer/detection/<faster_rcnn|mask_rcnn>/<baseline|relabel>`
(evaluator 'coco': `bbox_ap`, and `segm_ap` for Mask R-CNN, in %). The backbone is the pretrained model of
`pretrain/resnet50/original` (baseline) or `pretrain/resnet50/relabel` at the same scale and seed, obtained
through `relabel.launch.ensure_checkpoint` (trained first if missing). Heavy imports (mmdet) happen inside runs,
so `relabel.launch.discover()` stays cheap.
"""
from __future__ import annotations

import os

from relabel import launch
from relabel.records import make_record
from transfer.data import ensure_data

BACKBONES = {"baseline": "pretrain/resnet50/original", "relabel": "pretrain/resnet50/relabel"}
FINEGRAINED_TASKS = ("food101", "cars", "dtd", "aircraft", "pets")  # Table 8's columns
DETECTORS = ("faster_rcnn", "mask_rcnn")  # Table 9's column families


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def run_finegrained(ctx: launch.RunContext, task: str, pretrain: str) -> None:
    from transfer.backbone import open_backbone
    from transfer.finegrained import get_config, run_grid

    cfg = get_config(ctx.scale, task)
    ensure_data(cfg.world)
    ckpt = launch.ensure_checkpoint(BACKBONES[pretrain], ctx.scale, ctx.seed)
    bb = open_backbone(ckpt, cfg.backbone_arch)
    res = run_grid(cfg, bb, ctx.workdir, ctx.seed)
    if not _is_main_process():
        return
    splits = res["splits"]
    rec = make_record(
        experiment=ctx.experiment, evaluator="grid",
        metrics={k: res[k] for k in ("top1_best_on_test", "top1_selected_on_holdout")},
        config={**cfg.to_dict(), "backbone": BACKBONES[pretrain]}, scale=ctx.scale, seed=ctx.seed,
        dataset={"name": cfg.dataset, "split": splits["test"]["name"], "size": splits["test"]["size"],
                 "fit": splits["fit"], "holdout": splits["holdout"], "num_classes": res["num_classes"]},
        wall_time_s=res["wall_s"],
        cells=[f"table8/{pretrain}_{p}/{task}" for p in ("paper", "honest")],
        extra={"protocols": {"top1_best_on_test": "max over the grid of test top-1 (the paper's reporting)",
                             "top1_selected_on_holdout": "test top-1 of the grid point best on the holdout split"},
               "paper_point": res["paper_point"], "selected_point": res["selected_point"], "grid": res["points"],
               "backbone_checkpoint": str(ckpt), "eval": {"input_size": cfg.input_size,
                                                          "crop_ratio": cfg.eval_crop_ratio}})
    ctx.append(rec)


def run_detection(ctx: launch.RunContext, detector: str, pretrain: str) -> None:
    from transfer import detection

    cfg = detection.get_config(ctx.scale, detector)
    ensure_data(cfg.world)
    ckpt = launch.ensure_checkpoint(BACKBONES[pretrain], ctx.scale, ctx.seed)
    res = detection.run_detection(cfg, ckpt, ctx.workdir, ctx.seed)
    if not _is_main_process():
        return
    rec = make_record(
        experiment=ctx.experiment, evaluator="coco", metrics=res.metrics,
        config={**cfg.to_dict(), "backbone": BACKBONES[pretrain]}, scale=ctx.scale, seed=ctx.seed,
        dataset={"name": cfg.dataset, "split": cfg.val_images, "size": res.val_size, "train_size": res.train_size},
        wall_time_s=res.wall_s,
        cells=[f"table9/{pretrain}/{c}" for c in (("faster_bbox",) if detector == "faster_rcnn"
                                                   else ("mask_bbox", "mask_segm"))],
        extra={"backbone_checkpoint": str(ckpt), "image_scale": list(cfg.image_scale), "resumed": res.resumed,
               "metric": "mmdet CocoMetric (pycocotools), AP@[.5:.95] ×100, final weights"})
    ctx.append(rec)


def _register() -> None:
    for pre in BACKBONES:
        for task in FINEGRAINED_TASKS:
            launch.register(f"transfer/finegrained/{task}/{pre}", ("grid",),
                            doc=f"Table 8: {task} fine-tuning grid from the {pre} backbone")(
                lambda ctx, task=task, pre=pre: run_finegrained(ctx, task, pre))
        for det in DETECTORS:
            launch.register(f"transfer/detection/{det}/{pre}", ("coco",),
                            doc=f"Table 9: {det} FPN on COCO from the {pre} backbone")(
                lambda ctx, det=det, pre=pre: run_detection(ctx, det, pre))


_register()
