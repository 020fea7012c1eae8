"""Registers the pretraining experiments with the launcher: the tables' targets, the annotators, Figs. 2 and 5.

`pretrain/<arch>/<row>` (the ids of TARGETS, written out; any other pair runs by hand: `python -m pretrain`) trains
one target (resuming if killed), saves `model.safetensors` in its workdir and writes one record per requested
evaluator. Shared artifacts — the mini world, the annotator, the label-map stores
and the label-cleaning list — are built once per scale under `runs/<scale>/` behind a file lock, so concurrent
jobs never build them twice. Each target seed reuses the same annotator and stores (as every paper row reuses the
released maps). `annotator/<name>` records each machine annotator's own accuracy (Fig. 4's x axis); KD rows
(Fig. 6) forward their teacher on every crop, and every target's 'cost' record holds its measured wall-clock and
the GFLOPs spent producing its labels.
"""
from __future__ import annotations

import time
from pathlib import Path

from pretrain import artifacts as A
from pretrain.analysis import label_confidence
from pretrain.config import ARCHS, ROWS, annotator_config, get_config, target_config
from relabel import evaluators as E
from relabel import launch, stamped
from relabel.checkpoint import load_model, save_model
from relabel.costs import model_stats, training_cost
from relabel.data.stats import crop_iou_stats
from relabel.loader import TrainSet
from relabel.records import config_hash, file_sha256, make_record
from relabel.train import TrainConfig, set_aside_earlier_recipe, train, train_transform_for

# Evaluators a target experiment can write records for: the paper's evaluator units (relabel.evaluators.NAMES, in
# UNIT_MODULES order), plus the training cost.
TARGET_EVALUATORS = E.NAMES + ("cost",)


def record_evaluations(ctx, model, train_cfg, cfg, dataset: dict, extra_metrics: dict | None = None,
                       cost: dict | None = None) -> None:
    """One record per evaluator the launcher asked for (and 'val' always, the final-step evaluation)."""
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
                               config={"train": _train_recipe(ctx, train_cfg), "eval": res.params, "data": dataset,
                                       **A.test_sets(cfg)},
                               scale=ctx.scale, seed=ctx.seed, dataset=res.dataset, wall_time_s=time.time() - t0,
                               outcomes=res.outcomes))
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
    E.check_data(sorted((set(ctx.evaluators) | {"val"}) - {"cost"}), A.data_roots(cfg))
    store, annotation_s, annotated, label_gflops = None, 0.0, 0, lambda: A.annotator_gflops(cfg, spec.annotator)
    if spec.extra:  # Table 5: train + the extra split re-labelled by the annotator, class-balanced
        root, samples, store, annotation_s = A.train_with_extra(cfg, spec.store_dtype, spec.store_k, spec.annotator)
        annotated = sum(A.annotation_job(cfg, spec.annotator, tag).get("images", 0)
                        for tag in ("extra", f"trainextra{cfg.extra_per_class}"))
        store = store if spec.uses_store else None
    else:
        root, samples = A.train_samples(cfg)
        if spec.uses_store:
            store, annotation_s, annotated, label_gflops = STORES[spec.label](cfg, spec, tcfg)
    if spec.clean:
        keep = A.clean_list(cfg)
        samples = [s for s in samples if s.path in keep]
    teacher, teacher_size, teacher_gflops = None, None, 0.0
    if spec.teacher:  # Fig. 6: a forward of the teacher on every training crop
        teacher, teacher_size, teacher_gflops = A.teacher(cfg, spec.teacher)
    rows = store.rows([s.path for s in samples]) if store is not None else None
    ds = TrainSet(root, samples, train_transform_for(tcfg), ctx.seed, rows=rows, cache=cfg.cache_images)
    set_aside_earlier_recipe(ctx.workdir / "train", tcfg)
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
                         label_gflops() if annotated else 0.0)
    if spec.teacher:
        cost["teacher_train_wall_s"] = A.annotator_train_seconds(cfg, spec.teacher)  # pretrained in the paper
    # EfficientNets at full scale train at their own resolution (240-300) and are evaluated there
    ecfg = cfg if tcfg.input_size == cfg.target.input_size else cfg.replace(eval_input=tcfg.input_size)
    record_evaluations(ctx, res.model, tcfg, ecfg, dataset, stats, cost)


def _label_map_store(cfg, spec, tcfg):
    """ReLabel's top-k label-map store of the train split: (store, annotation seconds, annotator forwards, GFLOPs
    of one forward: the dense-map reading)."""
    store, seconds = A.label_store(cfg, spec.store_dtype, spec.store_k, spec.annotator)
    return (store, seconds, A.annotation_job(cfg, spec.annotator).get("images", 0),
            lambda: A.annotator_gflops(cfg, spec.annotator))


def _crop_label_store(cfg, spec, tcfg):
    """FKD's crop-label store of the train split (relabel/labels/fkd.py), built once per annotator, R, k and crop
    recipe for every seed: (store, its labelling seconds, annotator forwards = images × R, GFLOPs of one forward:
    the annotator as a classifier at its input size, as KD's teacher)."""
    from relabel.labels.fkd import CropLabelStore, build_crop_store
    from relabel.store import dataset_fingerprint, file_sizes
    root, samples = A.train_samples(cfg)
    paths = [s.path for s in samples]
    sizes = file_sizes(root, paths)
    crops, k = spec.label_args["crops"], spec.label_args["k"]
    size = annotator_config(cfg, spec.annotator).input_size
    ident = {"annotator": A.annotator_identity(cfg, spec.annotator), "crops": crops, "k": k, "input_size": size,
             "crop_scale": list(tcfg.crop_scale), "hflip": tcfg.hflip, "dataset": dataset_fingerprint(paths, sizes)}
    crop_tag = config_hash({n: v for n, v in ident.items() if n not in ("annotator", "dataset")})[:8]  # R, k, crops
    path = launch.runs_root() / cfg.scale / "stores" / f"{A._annotator_tag(cfg, spec.annotator)}-crops-{crop_tag}"

    def build():
        from relabel.dist import init_distributed
        from relabel.hardware import cpu_bf16_enabled
        from relabel.train import default_device
        dev = default_device(init_distributed())  # rank 0 alone labels every crop (the others wait)
        model = A.teacher(cfg, spec.annotator)[0].to(dev)
        build_crop_store(path, model, root, paths, sizes, crops=crops, k=k, num_classes=tcfg.num_classes,
                         input_size=size, crop_scale=tcfg.crop_scale, hflip=tcfg.hflip,
                         amp=dev.type == "cuda" or (tcfg.amp_cpu and cpu_bf16_enabled()))  # as KD's teacher
    stamped.artifact(path, ident, build, ready=lambda: (path / "meta.json").is_file())
    store = CropLabelStore.open(path, dataset_paths=paths, dataset_sizes=sizes)
    return store, store.meta["job"]["seconds"], store.meta["job"]["crops"], lambda: A.teacher(cfg, spec.annotator)[2]


# How a pretraining row's label store is made, per label source that reads one (relabel.labels: needs "store").
STORES = {"relabel": _label_map_store, "fkd": _crop_label_store}


# The pretraining experiments: exactly the cells the tables and figures read (results/tables.py names each by this
# same string), which include the backbones other sections take through launch.ensure_checkpoint — transfer/
# (Tables 8, 9: resnet50 original and relabel) and multilabel_coco/ (Table 10: resnet50 and resnet101 original).
# Every other (architecture, row) of pretrain.config runs by hand, `python -m pretrain ARCH ROW`, and feeds no
# table. tests/test_experiments_cli.py keeps this list and the tables' ids equal.
TARGETS = (
    # ResNet-50 on every label source of pretrain.config.ROWS
    "pretrain/resnet50/original",  # Tables 2-7, Figs. 4 and 6; the baseline backbone of Tables 8-10
    "pretrain/resnet50/relabel",  # Tables 2-7, Figs. 4 and 6; the ReLabel backbone of Tables 8, 9
    "pretrain/resnet50/localized_single",  # Table 2
    "pretrain/resnet50/global_multi",  # Table 2
    "pretrain/resnet50/global_single",  # Table 2
    "pretrain/resnet50/relabel_oracle",  # Table 2's extra row (mini only), Fig. 4's oracle point
    "pretrain/resnet50/label_smoothing",  # Tables 3, A1
    "pretrain/resnet50/label_cleaning",  # Tables 3, A1
    "pretrain/resnet50/relabel_fp16",  # Table 6
    "pretrain/resnet50/relabel_int8",  # Table 6
    "pretrain/resnet50/relabel_top1",  # Table 6 (k explored in the text)
    "pretrain/resnet50/relabel_top3",  # Table 6
    "pretrain/resnet50/relabel_top10",  # Table 6
    "pretrain/resnet50/relabel_mix_onehot",  # Table 6
    "pretrain/resnet50/relabel_cutmix",  # Tables 5, 7
    "pretrain/resnet50/relabel_cutmix_extra",  # Tables 5, 7
    "pretrain/resnet50/relabel_ann-w025",  # Fig. 4
    "pretrain/resnet50/relabel_ann-w05",  # Fig. 4
    "pretrain/resnet50/relabel_ann-e2",  # Fig. 4
    "pretrain/resnet50/relabel_ann-e6",  # Fig. 4
    "pretrain/resnet50/kd_ann-w025",  # Fig. 6
    "pretrain/resnet50/kd_ann-w05",  # Fig. 6
    "pretrain/resnet50/kd_ann-e6",  # Fig. 6
    "pretrain/resnet50/kd_ann-default",  # Fig. 6
    "pretrain/resnet50/fkd",  # Fig. 6's extra row (beyond the paper): FKD's stored crop labels
    # Table 4: every architecture, vanilla and ReLabel (and Table 5's ResNet-101 rows)
    "pretrain/resnet18/original",
    "pretrain/resnet18/relabel",
    "pretrain/resnet101/original",  # Tables 4, 5; the ResNet-101 backbone of Table 10
    "pretrain/resnet101/relabel",  # Tables 4, 5
    "pretrain/resnet101/relabel_cutmix",  # Table 5
    "pretrain/efficientnet_b0/original",
    "pretrain/efficientnet_b0/relabel",
    "pretrain/efficientnet_b1/original",
    "pretrain/efficientnet_b1/relabel",
    "pretrain/efficientnet_b2/original",
    "pretrain/efficientnet_b2/relabel",
    "pretrain/efficientnet_b3/original",
    "pretrain/efficientnet_b3/relabel",
    "pretrain/rexnet_100/original",
    "pretrain/rexnet_100/relabel",
)


def target_id(arch: str, row: str) -> str:
    """The experiment id of a target (`pretrain/<arch>/<row>`), after checking both names."""
    if arch not in ARCHS:
        raise KeyError(f"unknown architecture '{arch}'; known: {', '.join(ARCHS)}")
    if row not in ROWS:
        raise KeyError(f"unknown pretraining row '{row}'; known: {', '.join(ROWS)}")
    return f"pretrain/{arch}/{row}"


def target_experiment(arch: str, row: str) -> launch.Experiment:
    """The target `arch` trained on the labels of `row`: what TARGETS registers, and what `python -m pretrain`
    runs for any other (arch, row) of pretrain.config."""
    exp_id, spec = target_id(arch, row), ROWS[row]

    def run(ctx):
        run_target(ctx, arch, row)

    def recipe(scale, seed):
        cfg = get_config(scale)  # + the annotators it reads (recipe, checkpoint sha256, release), the clean list
        clean = ({"clean_list_sha256": file_sha256(cfg.clean_list)} if spec.clean and scale == "full"
                 and cfg.clean_list and Path(cfg.clean_list).is_file() else {})
        return {**target_config(cfg, arch, row, seed).to_dict(), **A.recipe_annotators(cfg, _reads(spec, scale)),
                **clean, **({"label_args": spec.label_args} if spec.label_args else {})}
    return launch.Experiment(exp_id, frozenset(TARGET_EVALUATORS), run, f"{arch} trained with the '{row}' labels",
                             _needs(spec), recipe)


def _register_targets():
    for exp_id in TARGETS:
        _, arch, row = exp_id.split("/")
        exp = target_experiment(arch, row)
        launch.register(exp.id, exp.evaluators, doc=exp.doc, needs=exp.needs, recipe=exp.recipe)(exp.run)


def _reads(spec, scale: str = "mini") -> tuple:
    """The annotators whose maps (a store, the extra subset, the clean list at mini, where the annotator makes it)
    or predictions (a KD teacher) a row trains on: part of its recipe, so their change makes its records stale."""
    maps = spec.uses_store or spec.extra or (spec.clean and scale == "mini")
    return tuple(sorted({n for n in (spec.annotator if maps else "", spec.teacher) if n}))


def _needs(spec) -> tuple:
    """The annotators a row builds or waits for ('annotator' = the default one), for the launcher's job order."""
    return tuple(sorted("annotator" if n == "default" else f"annotator/{n}" for n in _reads(spec)))


_register_targets()


def run_annotator(ctx, name: str) -> None:
    """The machine annotator's own accuracy (Fig. 4's x axis), read as a plain classifier."""
    cfg = get_config(ctx.scale)
    model = load_model(A.annotator_checkpoint(cfg, name))
    a = annotator_config(cfg, name)
    acfg = a.train
    extra = {**model_stats(model, a.input_size), "train_wall_s": A.annotator_train_seconds(cfg, name)}
    # read at its own input size (the paper's L2 at 475 px, the mini annotator at its own), whole images
    record_evaluations(ctx, model, acfg if acfg is not None else TrainConfig(), cfg.replace(eval_input=a.input_size),
                       {"name": A.dataset_name(cfg), "split": "+".join(a.train_splits), "size": 0}, extra)


def _annotator_recipe(scale: str, seed: int, name: str) -> dict:
    cfg = get_config(scale)
    train_cfg = annotator_config(cfg, name).train
    if train_cfg is not None:  # trained here or published: its recipe (+ the published weights) is its identity
        return A.annotator_recipe(cfg, name)
    return {**TrainConfig().to_dict(), **A.recipe_annotators(cfg, (name,))}


# Fig. 4's x axis: each machine annotator of pretrain.config.ANNOTATORS read as a plain classifier (results/tables.py
# names these ids). `annotator/default` is also the checkpoint Table 10's COCO annotator is fine-tuned from
# (multilabel_coco, through launch.ensure_checkpoint).
ANNOTATOR_EXPERIMENTS = {"annotator/w025": "w025", "annotator/w05": "w05", "annotator/e2": "e2",
                         "annotator/e6": "e6", "annotator/default": "default"}
for _id, _name in ANNOTATOR_EXPERIMENTS.items():
    launch.register(_id, ("val", "real"), doc=f"the machine annotator '{_name}' (Fig. 4)",
                    needs=("annotator",) if _name == "default" else (f"annotator/{_name}",),
                    recipe=lambda scale, seed, _name=_name: _annotator_recipe(scale, seed, _name))(
        lambda ctx, _name=_name: run_annotator(ctx, _name))


@launch.register("analysis/crop_iou", ("crop_iou",), doc="Fig. 2: random crops vs ground-truth boxes")
def run_crop_iou(ctx) -> None:
    cfg = get_config(ctx.scale)
    t0 = time.time()
    boxes, sizes, split = A.val_boxes(cfg)
    st = crop_iou_stats(boxes, sizes, n_crops=100, seed=ctx.seed)
    metrics = {"no_overlap_pct": 100 * st["no_overlap"], "iou_gt_05_pct": 100 * st["iou_gt_0.5"],
               "mean_max_iou": st["mean_max_iou"], "cdf_iou": st["cdf_iou"], "cdf": st["cdf_fraction"]}
    ctx.append(make_record(experiment=ctx.experiment, evaluator="crop_iou", metrics=metrics,
                           config={"n_crops": 100, "scale": [0.08, 1.0], "ratio": [3 / 4, 4 / 3],
                                   "boxes": "boxes of the labelled class", **A.test_sets(cfg)},
                           scale=ctx.scale, seed=ctx.seed,
                           dataset={"name": A.dataset_name(cfg), "split": split, "size": st["n_images"]},
                           wall_time_s=time.time() - t0))


def _fig5_recipe(scale, seed=0):
    cfg = get_config(scale)  # the annotator behind the maps: its recipe (mini) or its identity (full)
    return A.annotator_recipe(cfg) if cfg.annotator.train is not None else A.recipe_annotators(cfg, ("default",))


@launch.register("analysis/label_confidence", ("crop_conf",), doc="Fig. 5: pooled-label confidence vs crop IoU",
                 needs=("annotator",), recipe=_fig5_recipe)
def run_label_confidence(ctx) -> None:
    cfg = get_config(ctx.scale)
    t0 = time.time()
    store, _ = A.label_store(cfg, "float32", 5)
    metrics, n = label_confidence(A.train_annotations(cfg), store, seed=ctx.seed)
    ctx.append(make_record(experiment=ctx.experiment, evaluator="crop_conf", metrics=metrics,
                           config={"store": str(store.path), "crops_per_image": 20, "scale": [0.08, 1.0],
                                   "train": _fig5_recipe(ctx.scale)},  # the annotator behind the maps
                           scale=ctx.scale, seed=ctx.seed,
                           dataset={"name": A.dataset_name(cfg), "split": "train", "size": n},
                           wall_time_s=time.time() - t0))
