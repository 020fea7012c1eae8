"""Registers the pretraining experiments with the launcher: targets per (arch, row), the annotator, Figs. 2 and 5.

`pretrain/<arch>/<row>` trains one target (resuming if killed), saves `model.safetensors` in its workdir and
writes one record per requested evaluator. Shared artifacts — the mini world, the annotator, the label-map stores
and the label-cleaning list — are built once per scale under `runs/<scale>/` behind a file lock, so concurrent
jobs never build them twice. Each target seed reuses the same annotator and stores (as every paper row reuses the
released maps).
"""
from __future__ import annotations

import time
from pathlib import Path

import torch

from pretrain import artifacts as A
from pretrain.config import ARCHS, ROWS, get_config, target_config
from relabel import launch
from relabel.checkpoint import save_model
from relabel.loader import TrainSet
from relabel.records import make_record
from relabel.train import train, train_transform_for

# Evaluators a target experiment can write records for (relabel.evaluators names, plus the training cost).
TARGET_EVALUATORS = ("val", "v2-top-images", "v2-matched-frequency", "v2-threshold0.7", "real", "shankar",
                     "fgsm", "imagenet-a", "imagenet-c", "bgc", "cost")


def model_stats(model, input_size: int) -> dict:
    """Parameters (M) and multiply-adds per image (G, 'FLOPs' in the paper's sense) at the training input size."""
    from torch.utils.flop_counter import FlopCounterMode
    params = sum(p.numel() for p in model.parameters()) / 1e6
    was = model.training
    model.eval()
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(torch.zeros(1, 3, input_size, input_size, device=next(model.parameters()).device))
    model.train(was)
    return {"params_m": params, "gflops": fc.get_total_flops() / 2 / 1e9}


def record_evaluations(ctx, model, train_cfg, cfg, dataset: dict, extra_metrics: dict | None = None,
                       cost: dict | None = None) -> None:
    """One record per evaluator the launcher asked for (and 'val' always, the final-step evaluation)."""
    from relabel import evaluators as E
    wanted = set(ctx.evaluators) | {"val"}
    roots = A.data_roots(cfg)
    cache = {}  # val logits are shared by val, ReaL and Shankar
    for name in sorted(wanted - {"cost"}):
        t0 = time.time()
        res = E.evaluate(name, model, roots, input_size=cfg.eval_input, crop_ratio=cfg.eval_crop_ratio,
                         progress=True, cache=cache)
        metrics = dict(res.metrics)
        if name == "val" and extra_metrics:
            metrics.update(extra_metrics)
        ctx.append(make_record(experiment=ctx.experiment, evaluator=name, metrics=metrics,
                               config={"train": train_cfg.to_dict(), "eval": res.params, "data": dataset},
                               scale=ctx.scale, seed=ctx.seed, dataset=res.dataset, wall_time_s=time.time() - t0))
    if "cost" in wanted and cost is not None:
        ctx.append(make_record(experiment=ctx.experiment, evaluator="cost", metrics=cost,
                               config={"train": train_cfg.to_dict(), "data": dataset}, scale=ctx.scale,
                               seed=ctx.seed, dataset={**dataset, "split": "train"}, wall_time_s=cost["wall_s"]))


def run_target(ctx, arch: str, row: str) -> None:
    cfg = get_config(ctx.scale)
    spec = ROWS[row]
    tcfg = target_config(cfg, arch, row, ctx.seed)
    root, samples = A.train_samples(cfg)
    store, annotation_cost = None, 0.0
    if spec.uses_store:
        store, annotation_cost = A.label_store(cfg, spec.store_dtype, spec.store_k)
    if spec.clean:
        keep = A.clean_list(cfg)
        samples = [s for s in samples if s.path in keep]
    rows = store.rows([s.path for s in samples]) if store is not None else None
    ds = TrainSet(root, samples, train_transform_for(tcfg), ctx.seed, rows=rows, cache=cfg.cache_images)
    res = train(tcfg, ds, ctx.workdir / "train", store=store, workers=cfg.workers)
    if ctx.main_rank:
        save_model(res.model, ctx.workdir / "model.safetensors", arch=tcfg.model,
                   model_kwargs=tcfg.model_kwargs, num_classes=tcfg.num_classes,
                   extra={"eval_input_size": cfg.eval_input, "eval_crop_ratio": cfg.eval_crop_ratio,
                          "seed": ctx.seed, "experiment": ctx.experiment})
    dataset = {"name": A.dataset_name(cfg), "split": "train", "size": len(samples)}
    cost = {"wall_s": res.wall_s + annotation_cost, "train_wall_s": res.wall_s, "annotation_wall_s": annotation_cost,
            "teacher_gflops": 0.0, "images_seen": res.images_seen}
    record_evaluations(ctx, res.model, tcfg, cfg, dataset, model_stats(res.model, tcfg.input_size), cost)


def _register_targets():
    for arch in ARCHS:
        for row in ROWS:
            def run(ctx, arch=arch, row=row):
                run_target(ctx, arch, row)
            needs = ("annotator",) if ROWS[row].uses_store or ROWS[row].clean else ()
            launch.register(f"pretrain/{arch}/{row}", TARGET_EVALUATORS,
                            doc=f"{arch} trained with the '{row}' labels", needs=needs)(run)


_register_targets()


@launch.register("annotator/default", ("val", "real"), doc="the machine annotator's own accuracy",
                 needs=("annotator",))
def run_annotator(ctx) -> None:
    cfg = get_config(ctx.scale)
    model, _ = A.annotator(cfg)
    acfg = cfg.annotator.train
    record_evaluations(ctx, model, acfg, cfg, {"name": A.dataset_name(cfg), "split": "extra", "size": 0})


@launch.register("analysis/crop_iou", ("crop_iou",), doc="Fig. 2: random crops vs ground-truth boxes")
def run_crop_iou(ctx) -> None:
    from relabel.data.stats import crop_iou_stats
    cfg = get_config(ctx.scale)
    t0 = time.time()
    boxes, sizes, split = A.val_boxes(cfg)
    st = crop_iou_stats(boxes, sizes, n_crops=100, seed=ctx.seed)
    metrics = {"no_overlap_pct": 100 * st["no_overlap"], "iou_gt_05_pct": 100 * st["iou_gt_0.5"],
               "mean_max_iou": st["mean_max_iou"], "cdf_iou": st["cdf_iou"], "cdf": st["cdf_fraction"]}
    ctx.append(make_record(experiment=ctx.experiment, evaluator="crop_iou", metrics=metrics,
                           config={"n_crops": 100, "scale": [0.08, 1.0], "ratio": [3 / 4, 4 / 3],
                                   "boxes": "boxes of the labelled class"},
                           scale=ctx.scale, seed=ctx.seed,
                           dataset={"name": A.dataset_name(cfg), "split": split, "size": st["n_images"]},
                           wall_time_s=time.time() - t0))


@launch.register("analysis/label_confidence", ("crop_conf",), doc="Fig. 5: pooled-label confidence vs crop IoU",
                 needs=("annotator",))
def run_label_confidence(ctx) -> None:
    from pretrain.analysis import label_confidence
    cfg = get_config(ctx.scale)
    t0 = time.time()
    store, _ = A.label_store(cfg, "float32", 5)
    metrics, n = label_confidence(cfg, store, seed=ctx.seed)
    ctx.append(make_record(experiment=ctx.experiment, evaluator="crop_conf", metrics=metrics,
                           config={"store": str(store.path), "crops_per_image": 20, "scale": [0.08, 1.0]},
                           scale=ctx.scale, seed=ctx.seed,
                           dataset={"name": A.dataset_name(cfg), "split": "train", "size": n},
                           wall_time_s=time.time() - t0))
