"""Registers Tables 8 and 9 with the launcher: fine-grained grids and Faster/Mask R-CNN from our two backbones.

`transfer/finegrained/<task>/<baseline|relabel>` (evaluator 'grid': `top1_best_on_test` = the paper's protocol,
`top1_selected_on_holdout` = the honest one) and `transfer/detection/<faster_rcnn|mask_rcnn>/<baseline|relabel>`
(evaluator 'coco': `bbox_ap`, and `segm_ap` for Mask R-CNN, in %). The backbone is the pretrained model of
`pretrain/resnet50/original` (baseline) or `pretrain/resnet50/relabel` at the same scale and seed, obtained
through `relabel.launch.ensure_checkpoint` (trained first if missing). Heavy imports (mmdet) happen inside runs,
so `relabel.launch.discover()` stays cheap.

Staleness: a record's `config['train']` is the transfer config plus the backbone experiment and the hash of the
backbone's own pretraining recipe (`recipe()`), so records made from a backbone of an earlier pretraining recipe,
or under an earlier transfer config, are ignored by `make` and run again. A backbone checkpoint whose pretraining
records are all stale is refused (`current_backbone`) rather than transferred.
"""
from __future__ import annotations

import os

from relabel import launch
from relabel import records as R
from relabel.checkpoint import CheckpointError
from relabel.records import file_sha256
from relabel.records import make_record
from transfer.data import ensure_data, test_sets

BACKBONES = {"baseline": "pretrain/resnet50/original", "relabel": "pretrain/resnet50/relabel"}


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _finegrained_config(scale: str, task: str):
    from transfer.finegrained import get_config
    return get_config(scale, task)


def _detection_config(scale: str, detector: str):
    from transfer.detection import get_config
    return get_config(scale, detector)


def recipe(cfg, pretrain: str, scale: str, seed: int) -> dict:
    """What a transfer record stores as config['train']: the transfer config, the backbone experiment and its
    pretraining recipe's hash (relabel.launch.Experiment.recipe)."""
    return {**cfg.to_dict(), "backbone": BACKBONES[pretrain],
            "backbone_recipe_hash": launch.experiment_recipe_hash(BACKBONES[pretrain], scale, seed)}


def current_backbone(pretrain: str, scale: str, seed: int, records_path) -> str:
    """The backbone checkpoint (pretrained first if missing), refused with one clear sentence when it predates
    the current pretraining recipe: its experiment has records for this seed and none is current."""
    exp_id = BACKBONES[pretrain]
    ckpt = launch.ensure_checkpoint(exp_id, scale, seed)
    registry = launch.discover()
    recs = [r for r in R.read(records_path) if (r["experiment"], r["seed"], r["scale"]) == (exp_id, seed, scale)]
    # the recipe alone decides: records of earlier test sets (relabel.launch.on_current_test_sets) still name a
    # backbone trained under the current recipe
    if recs and exp_id in registry and not any(registry[exp_id].recipe_current(r) for r in recs):
        raise CheckpointError(f"backbone {ckpt} was trained under an earlier recipe of {exp_id} (its records are "
                              f"all stale); retrain it first (make table2 SEEDS={seed}) or delete the file so "
                              "the transfer experiment pretrains it")
    return str(ckpt)


def run_finegrained(ctx: launch.RunContext, task: str, pretrain: str) -> None:
    from transfer.backbone import open_backbone
    from transfer.finegrained import run_grid

    cfg = _finegrained_config(ctx.scale, task)
    ensure_data(cfg.world)
    ckpt = current_backbone(pretrain, ctx.scale, ctx.seed, ctx.records)
    bb = open_backbone(ckpt, cfg.backbone_arch)
    res = run_grid(cfg, bb, ctx.workdir, ctx.seed, on_stale="set_aside")
    if not _is_main_process():
        return
    splits = res["splits"]
    rec = make_record(
        experiment=ctx.experiment, evaluator="grid",
        metrics={k: res[k] for k in ("top1_best_on_test", "top1_selected_on_holdout")},
        config={"train": recipe(cfg, pretrain, ctx.scale, ctx.seed), **test_sets(cfg.world)}, scale=ctx.scale,
        seed=ctx.seed,
        dataset={"name": cfg.dataset, "split": splits["test"]["name"], "size": splits["test"]["size"],
                 "fit": splits["fit"], "holdout": splits["holdout"], "num_classes": res["num_classes"]},
        wall_time_s=res["wall_s"],
        cells=[f"table8/{pretrain}_{p}/{task}" for p in ("paper", "honest")],
        extra={"protocols": {"top1_best_on_test": "max over the grid of test top-1 (the paper's reporting)",
                             "top1_selected_on_holdout": "test top-1 of the grid point best on the holdout split"},
               "paper_point": res["paper_point"], "selected_point": res["selected_point"], "grid": res["points"],
               "backbone_checkpoint": ckpt, "backbone_sha256": bb.sha256,
               "eval": {"input_size": cfg.input_size, "crop_ratio": cfg.eval_crop_ratio}},
        outcomes=res.get("outcomes"))  # a grid scored before per-image outcomes has none
    ctx.append(rec)


def run_detection(ctx: launch.RunContext, detector: str, pretrain: str) -> None:
    from transfer import detection

    cfg = _detection_config(ctx.scale, detector)
    ensure_data(cfg.world)
    ckpt = current_backbone(pretrain, ctx.scale, ctx.seed, ctx.records)
    res = detection.run_detection(cfg, ckpt, ctx.workdir, ctx.seed, on_stale="set_aside")
    if not _is_main_process():
        return
    rec = make_record(
        experiment=ctx.experiment, evaluator="coco", metrics=res.metrics,
        config={"train": recipe(cfg, pretrain, ctx.scale, ctx.seed), **test_sets(cfg.world)}, scale=ctx.scale,
        seed=ctx.seed,
        dataset={"name": cfg.dataset, "split": cfg.val_images, "size": res.val_size, "train_size": res.train_size},
        wall_time_s=res.wall_s,
        cells=[f"table9/{pretrain}/{c}" for c in (("faster_bbox",) if detector == "faster_rcnn"
                                                   else ("mask_bbox", "mask_segm"))],
        extra={"backbone_checkpoint": ckpt, "backbone_sha256": file_sha256(ckpt),
               "image_scale": list(cfg.image_scale), "resumed": res.resumed, "train_wall_s": res.train_wall_s,
               "metric": "mmdet CocoMetric (pycocotools), AP@[.5:.95] ×100, final weights"})
    ctx.append(rec)


# Table 8's and Table 9's cells, each id written out as results/tables.py names it: (id, task or detector, backbone)
FINEGRAINED_EXPERIMENTS = (
    ("transfer/finegrained/food101/baseline", "food101", "baseline"),
    ("transfer/finegrained/cars/baseline", "cars", "baseline"),
    ("transfer/finegrained/dtd/baseline", "dtd", "baseline"),
    ("transfer/finegrained/aircraft/baseline", "aircraft", "baseline"),
    ("transfer/finegrained/pets/baseline", "pets", "baseline"),
    ("transfer/finegrained/food101/relabel", "food101", "relabel"),
    ("transfer/finegrained/cars/relabel", "cars", "relabel"),
    ("transfer/finegrained/dtd/relabel", "dtd", "relabel"),
    ("transfer/finegrained/aircraft/relabel", "aircraft", "relabel"),
    ("transfer/finegrained/pets/relabel", "pets", "relabel"),
)
DETECTION_EXPERIMENTS = (
    ("transfer/detection/faster_rcnn/baseline", "faster_rcnn", "baseline"),
    ("transfer/detection/mask_rcnn/baseline", "mask_rcnn", "baseline"),
    ("transfer/detection/faster_rcnn/relabel", "faster_rcnn", "relabel"),
    ("transfer/detection/mask_rcnn/relabel", "mask_rcnn", "relabel"),
)


def _register() -> None:
    for exp_id, task, pre in FINEGRAINED_EXPERIMENTS:
        launch.register(exp_id, ("grid",), doc=f"Table 8: {task} fine-tuning grid from the {pre} backbone",
                        recipe=lambda scale, seed, task=task, pre=pre: recipe(
                            _finegrained_config(scale, task), pre, scale, seed))(
            lambda ctx, task=task, pre=pre: run_finegrained(ctx, task, pre))
    for exp_id, det, pre in DETECTION_EXPERIMENTS:
        launch.register(exp_id, ("coco",), doc=f"Table 9: {det} FPN on COCO from the {pre} backbone",
                        recipe=lambda scale, seed, det=det, pre=pre: recipe(
                            _detection_config(scale, det), pre, scale, seed))(
            lambda ctx, det=det, pre=pre: run_detection(ctx, det, pre))


_register()
