"""Registers Table 10 with the launcher: `multilabel_coco/<resnet50|resnet101>/<baseline|machine|oracle>`.

Each run fine-tunes the pretrained init on COCO train with BCE (multilabel_coco/pipeline.py) and writes one record
of evaluator 'coco-val' (`map`: mAP in %, plus per-class AP). `multilabel_coco/annotator` records the machine
annotator's own mAP (the paper's TResNet-XL: 88.4). Heavy work happens inside runs, so `discover()` stays cheap.
"""
from __future__ import annotations

import time

from multilabel_coco.config import annotator_recipe, get_config, recipe
from relabel import launch
from relabel.data import world_test_sets
from relabel.records import make_record

EVALUATOR = "coco-val"


def _dataset(cfg, size: int) -> dict:
    return {"name": cfg.dataset, "split": "val", "size": size}


def _test_sets(cfg) -> dict:
    """The identity of the COCO val it was scored on (mini: the world's test splits, relabel.data.world_test_sets),
    so a record of earlier test sets is stale (relabel.launch.on_current_test_sets); full: nothing."""
    return {"test_sets": world_test_sets(cfg.world)} if cfg.world else {}


def run_cell(ctx: launch.RunContext, arch: str, row: str) -> None:
    from multilabel_coco.pipeline import run
    cfg = get_config(ctx.scale, arch, row, ctx.seed)
    t0 = time.time()
    res = run(cfg, ctx.workdir, main_rank=ctx.main_rank)
    m = res["metrics"]
    ctx.append(make_record(
        experiment=ctx.experiment, evaluator=EVALUATOR,
        metrics={"map": m["map"], "ap_per_class": m["ap"], "classes_scored": m["classes_scored"],
                 "train_wall_s": res["train_wall_s"], "eval_wall_s": res["eval_wall_s"]},
        config={**cfg.to_dict(), "train": recipe(cfg), "resolved_train": res["train_config"].to_dict(),
                **_test_sets(cfg)},
        scale=ctx.scale, seed=ctx.seed,
        dataset={**_dataset(cfg, res["val_size"]), "train_size": res["train_size"],
                 "positives_per_image": res["positives_per_image"]},
        wall_time_s=time.time() - t0, cells=[f"table10/{'r50' if arch == 'resnet50' else 'r101'}_{row}/map"],
        extra={"init": res["init"], "label_maps": res["maps"], "steps": res["steps"],
               "eval": {"input_size": cfg.eval_input, "crop": "whole image resized (no crop)"},
               "metric": "mean over classes with a positive of scikit-learn-style average precision, ×100"},
        outcomes=m.get("outcomes")))


def run_annotator(ctx: launch.RunContext) -> None:
    from multilabel_coco.pipeline import evaluate_map, machine_annotator, splits
    cfg = get_config(ctx.scale, "resnet50", "machine", 0)
    t0 = time.time()
    train_split, val_split = splits(cfg)
    model, ckpt = machine_annotator(cfg, train_split)
    m = evaluate_map(model, val_split, cfg.replace(eval_input=cfg.annotator.input_size))
    ctx.append(make_record(
        experiment=ctx.experiment, evaluator=EVALUATOR, metrics={"map": m["map"], "ap_per_class": m["ap"]},
        config={"annotator": cfg.annotator.to_dict(), "train": annotator_recipe(cfg), **_test_sets(cfg)},
        scale=ctx.scale, seed=ctx.seed,
        dataset=_dataset(cfg, len(val_split.paths)), wall_time_s=time.time() - t0, extra={"checkpoint": ckpt}))


# Table 10's cells, each id written out as results/tables.py names it: (id, arch, row)
EXPERIMENTS = (
    ("multilabel_coco/resnet50/baseline", "resnet50", "baseline"),
    ("multilabel_coco/resnet50/machine", "resnet50", "machine"),
    ("multilabel_coco/resnet50/oracle", "resnet50", "oracle"),
    ("multilabel_coco/resnet101/baseline", "resnet101", "baseline"),
    ("multilabel_coco/resnet101/machine", "resnet101", "machine"),
    ("multilabel_coco/resnet101/oracle", "resnet101", "oracle"),
)


def _register() -> None:
    for exp_id, arch, row in EXPERIMENTS:
        needs = (f"pretrained/{arch}",) + {"machine": ("coco_annotator",), "oracle": ("coco_oracle_maps",)}.get(row, ())
        launch.register(exp_id, (EVALUATOR,), needs=needs,
                        doc=f"Table 10: {arch} on COCO multi-label, {row} targets (BCE)",
                        recipe=lambda scale, seed, arch=arch, row=row: recipe(get_config(scale, arch, row, seed)))(
            lambda ctx, arch=arch, row=row: run_cell(ctx, arch, row))
    launch.register("multilabel_coco/annotator", (EVALUATOR,), needs=("coco_annotator",),
                    doc="Table 10: the machine annotator's own COCO val mAP",
                    recipe=lambda scale, seed: annotator_recipe(get_config(scale, "resnet50", "machine", 0)))(
        run_annotator)


_register()
