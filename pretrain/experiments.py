"""Registers the pretraining experiments with the launcher: targets per (arch, row), the annotator, Figs. 2 and 5.

`pretrain/<arch>/<row>` trains one target (resuming if killed), saves `model.safetensors` in its workdir and
writes one record per requested evaluator. Shared artifacts — the mini world, the annotator, the label-map stores
and the label-cleaning list — are built once per scale under `runs/<scale>/` behind a file lock, so concurrent
jobs never build them twice. Each target seed reuses the same annotator and stores (as every paper row reuses the
released maps). `annotator/<name>` records each machine annotator's own accuracy (Fig. 4's x axis); KD rows
(Fig. 6) forward their teacher on every crop, and every target's 'cost' record holds its measured wall-clock and
the GFLOPs spent producing its labels.
"""
from __future__ import annotations

import time

import torch

from pretrain import artifacts as A
from pretrain.config import ANNOTATORS, ARCHS, ROWS, annotator_config, get_config, target_config
from relabel import launch
from relabel.checkpoint import load_model, save_model
from relabel.loader import TrainSet
from relabel.records import make_record
from relabel.train import TrainConfig, set_aside_stale, train, train_transform_for

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
                               config={"train": _train_recipe(ctx, train_cfg), "eval": res.params, "data": dataset},
                               scale=ctx.scale, seed=ctx.seed, dataset=res.dataset, wall_time_s=time.time() - t0))
    if "cost" in wanted and cost is not None:
        ctx.append(make_record(experiment=ctx.experiment, evaluator="cost", metrics=cost,
                               config={"train": _train_recipe(ctx, train_cfg), "data": dataset}, scale=ctx.scale,
                               seed=ctx.seed, dataset={**dataset, "split": "train"}, wall_time_s=cost["wall_s"]))


def _train_recipe(ctx, train_cfg) -> dict:
    """A record's config['train']: the recipe the launcher ran it under (with the identity of the annotators it
    read, relabel.launch.RunContext.recipe), or the trainer's config when run outside the launcher."""
    return ctx.recipe if getattr(ctx, "recipe", None) is not None else train_cfg.to_dict()


def run_target(ctx, arch: str, row: str) -> None:
    cfg = get_config(ctx.scale)
    spec = ROWS[row]
    tcfg = target_config(cfg, arch, row, ctx.seed)
    # every evaluation set this run will read is checked before training (not after 300 epochs)
    A.data_roots(cfg).check(sorted((set(ctx.evaluators) | {"val"}) - {"cost"}))
    store, annotation_s, annotated = None, 0.0, 0
    if spec.extra:  # Table 5: train + the extra split re-labelled by the annotator, class-balanced
        root, samples, store, annotation_s = A.train_with_extra(cfg, spec.store_dtype, spec.store_k, spec.annotator)
        annotated = sum(A.annotation_job(cfg, spec.annotator, tag).get("images", 0)
                        for tag in ("extra", f"trainextra{cfg.extra_per_class}"))
        store = store if spec.uses_store else None
    else:
        root, samples = A.train_samples(cfg)
        if spec.uses_store:
            store, annotation_s = A.label_store(cfg, spec.store_dtype, spec.store_k, spec.annotator)
            annotated = A.annotation_job(cfg, spec.annotator).get("images", 0)
    if spec.clean:
        keep = A.clean_list(cfg)
        samples = [s for s in samples if s.path in keep]
    teacher, teacher_size, teacher_gflops = None, None, 0.0
    if spec.teacher:  # Fig. 6: a forward of the teacher on every training crop
        teacher, teacher_size, teacher_gflops = A.teacher(cfg, spec.teacher)
    rows = store.rows([s.path for s in samples]) if store is not None else None
    ds = TrainSet(root, samples, train_transform_for(tcfg), ctx.seed, rows=rows, cache=cfg.cache_images)
    set_aside_stale(ctx.workdir / "train", tcfg)
    res = train(tcfg, ds, ctx.workdir / "train", store=store, teacher=teacher, teacher_input_size=teacher_size,
                workers=cfg.workers)
    if ctx.main_rank:
        save_model(res.model, ctx.workdir / "model.safetensors", arch=tcfg.model,
                   model_kwargs=tcfg.model_kwargs, num_classes=tcfg.num_classes,
                   extra={"eval_input_size": cfg.eval_input, "eval_crop_ratio": cfg.eval_crop_ratio,
                          "seed": ctx.seed, "experiment": ctx.experiment})
    dataset = {"name": A.dataset_name(cfg), "split": "train+extra" if spec.extra else "train", "size": len(samples)}
    stats = model_stats(res.model, tcfg.input_size)
    cost = training_cost(res, stats["gflops"], teacher_gflops, annotation_s, annotated,
                         A.annotator_gflops(cfg, spec.annotator) if annotated else 0.0)
    if spec.teacher:
        cost["teacher_train_wall_s"] = A.annotator_train_seconds(cfg, spec.teacher)  # pretrained in the paper
    # EfficientNets at full scale train at their own resolution (240-300) and are evaluated there
    ecfg = cfg if tcfg.input_size == cfg.target.input_size else cfg.replace(eval_input=tcfg.input_size)
    record_evaluations(ctx, res.model, tcfg, ecfg, dataset, stats, cost)


def training_cost(res, student_gflops: float, teacher_gflops: float = 0.0, annotation_s: float = 0.0,
                  annotated: int = 0, annotator_gflops: float = 0.0) -> dict:
    """Fig. 6's cost of one run, measured: wall-clock (training, which includes KD's teacher forwards, plus the
    annotation job a ReLabel row's store took) and multiply-adds (G) spent producing labels — a teacher forward
    per training image for KD, one annotator forward per annotated image for ReLabel. Training the teacher or
    annotator is not counted (the paper takes both pretrained)."""
    teacher_total = res.teacher_forwards * teacher_gflops
    annotation_total = annotated * annotator_gflops
    return {"wall_s": res.wall_s + annotation_s, "train_wall_s": res.wall_s, "annotation_wall_s": annotation_s,
            "images_seen": res.images_seen, "teacher_forwards": res.teacher_forwards,
            "teacher_gflops": teacher_total, "annotation_images": annotated, "annotation_gflops": annotation_total,
            "label_gflops": teacher_total + annotation_total,
            "student_gflops": 3.0 * res.images_seen * student_gflops,  # forward + backward ≈ 3 forwards
            "total_gflops": 3.0 * res.images_seen * student_gflops + teacher_total + annotation_total}


def _register_targets():
    for arch in ARCHS:
        for row, spec in ROWS.items():
            def run(ctx, arch=arch, row=row):
                run_target(ctx, arch, row)
            def recipe(scale, seed, arch=arch, row=row, spec=spec):
                cfg = get_config(scale)  # + the external annotators (checkpoint sha256, release) it reads
                return {**target_config(cfg, arch, row, seed).to_dict(), **A.recipe_annotators(cfg, _reads(spec))}
            launch.register(f"pretrain/{arch}/{row}", TARGET_EVALUATORS,
                            doc=f"{arch} trained with the '{row}' labels", needs=_needs(spec), recipe=recipe)(run)


def _reads(spec) -> tuple:
    """The annotators whose maps (a store, the extra subset) or predictions (a KD teacher) a row trains on."""
    return tuple(n for n in (spec.annotator if spec.uses_store or spec.extra else "", spec.teacher) if n)


def _needs(spec) -> tuple:
    """The annotators a row builds or waits for ('annotator' = the default one), for the launcher's job order."""
    names = {spec.annotator} if (spec.uses_store or spec.clean or spec.extra) else set()
    names |= {spec.teacher} if spec.teacher else set()
    return tuple(sorted("annotator" if n == "default" else f"annotator/{n}" for n in names))


_register_targets()


def run_annotator(ctx, name: str) -> None:
    """The machine annotator's own accuracy (Fig. 4's x axis), read as a plain classifier."""
    cfg = get_config(ctx.scale)
    model = load_model(A.annotator_checkpoint(cfg, name))
    a = annotator_config(cfg, name)
    acfg = a.train
    extra = {**model_stats(model, a.input_size), "train_wall_s": A.annotator_train_seconds(cfg, name)}
    record_evaluations(ctx, model, acfg if acfg is not None else TrainConfig(), cfg,
                       {"name": A.dataset_name(cfg), "split": "extra", "size": 0}, extra)


def _annotator_recipe(scale: str, seed: int, name: str) -> dict:
    cfg = get_config(scale)
    train_cfg = annotator_config(cfg, name).train
    if train_cfg is not None:  # trained here: its recipe is its identity
        return train_cfg.to_dict()
    return {**TrainConfig().to_dict(), **A.recipe_annotators(cfg, (name,))}


for _name in ANNOTATORS:
    launch.register(f"annotator/{_name}", ("val", "real"), doc=f"the machine annotator '{_name}' (Fig. 4)",
                    needs=("annotator",) if _name == "default" else (f"annotator/{_name}",),
                    recipe=lambda scale, seed, _name=_name: _annotator_recipe(scale, seed, _name))(
        lambda ctx, _name=_name: run_annotator(ctx, _name))


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


def _fig5_recipe(scale, seed=0):
    cfg = get_config(scale)  # the annotator behind the maps: its recipe (mini) or its identity (full)
    return cfg.annotator.train.to_dict() if cfg.annotator.train is not None else A.recipe_annotators(cfg, ("default",))


@launch.register("analysis/label_confidence", ("crop_conf",), doc="Fig. 5: pooled-label confidence vs crop IoU",
                 needs=("annotator",), recipe=_fig5_recipe)
def run_label_confidence(ctx) -> None:
    from pretrain.analysis import label_confidence
    cfg = get_config(ctx.scale)
    t0 = time.time()
    store, _ = A.label_store(cfg, "float32", 5)
    metrics, n = label_confidence(cfg, store, seed=ctx.seed)
    ctx.append(make_record(experiment=ctx.experiment, evaluator="crop_conf", metrics=metrics,
                           config={"store": str(store.path), "crops_per_image": 20, "scale": [0.08, 1.0],
                                   "train": _fig5_recipe(ctx.scale)},  # the annotator behind the maps
                           scale=ctx.scale, seed=ctx.seed,
                           dataset={"name": A.dataset_name(cfg), "split": "train", "size": n},
                           wall_time_s=time.time() - t0))
