"""One Table 10 run end to end: pretrained init, label-map stores (oracle, machine), the one trainer, mAP on val.

Shared artifacts — the pretrained init, the machine annotator, the two label-map stores — are built once per
scale under `runs/<scale>/multilabel_coco/` (the init under its own pretraining experiment) behind file locks, so
concurrent jobs never build them twice, and every row and seed reuses them (as every paper row reuses one
torchvision checkpoint and one set of maps).
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from multilabel_coco import targets as _targets  # noqa: F401  (registers the ml_* pooled-target rules)
from multilabel_coco.config import MultiLabelConfig, annotator_recipe
from multilabel_coco.data import CocoSplit, read_split
from multilabel_coco.metrics import mean_average_precision
from relabel import outcomes as O
from multilabel_coco.oracle import build_oracle_store
from relabel import launch, stamped
from relabel.annotate import annotate, whole_image_transform
from relabel.metrics import predict
from relabel.data.readers import list_class_folders
from relabel.loader import EvalSet, Sample, TrainSet
from relabel.dist import is_main
from relabel.records import file_sha256, write_json_atomic
from relabel.store import LabelMapStore, dataset_fingerprint, file_sizes
from relabel.train import TrainConfig, train, train_transform_for

ANNOTATOR_EXPERIMENT = "multilabel_coco/annotator"


def _root(cfg: MultiLabelConfig) -> Path:
    return launch.runs_root() / cfg.scale / "multilabel_coco"


def splits(cfg: MultiLabelConfig) -> tuple[CocoSplit, CocoSplit]:
    """(train, val), generating the mini world first if it is missing or was built by earlier code."""
    if cfg.world:
        from relabel.data import ensure_world
        ensure_world(Path(cfg.world).parent, seed=0, log=lambda m: print(m, flush=True))
    return (read_split(cfg.train_images, cfg.train_annotations), read_split(cfg.val_images, cfg.val_annotations))


def _experiment_checkpoint(experiment: str, scale: str, seed: int) -> Path:
    """A launcher experiment's model.safetensors, trained first if missing (locked: jobs may share it)."""
    # Its own lock file: the experiment may lock model.safetensors itself (pretrain's annotator does), and a
    # second flock on one file from the same process would wait forever.
    with stamped.artifact_lock(launch.checkpoint_path(experiment, scale, seed).parent / "ensure_checkpoint"):
        return launch.ensure_checkpoint(experiment, scale, seed)


def pretrained_init(cfg: MultiLabelConfig) -> tuple[str, dict, dict, str]:
    """(timm arch, create_model kwargs, state dict, where it came from) of the ImageNet-pretrained init."""
    kind, _, name = cfg.init.partition(":")
    if kind == "timm":
        from multilabel_coco.config import INIT_ENV
        from relabel.checkpoint import convert_command, timm_pretrained
        model = timm_pretrained(name, f"set {INIT_ENV[cfg.arch]} to a local weights file of it (a .safetensors or "
                                      f".pth; `{convert_command('FILE.pth', cfg.arch)}` checks one)")
        return name.split(".")[0], {}, model.state_dict(), cfg.init
    if kind == "file":  # a local weights file of `arch` (ours, timm's or torchvision's; relabel.checkpoint)
        from relabel.checkpoint import load_checkpoint
        ck = load_checkpoint(name, cfg.arch)
        return ck.arch.split(".")[0], dict(ck.model_kwargs), ck.model.state_dict(), f"{cfg.init} (sha256 {ck.sha256})"
    from safetensors.torch import load_file
    from relabel.checkpoint import read_meta
    path = _experiment_checkpoint(name, cfg.scale, cfg.init_seed)
    meta = read_meta(path)
    return meta["arch"], dict(meta.get("model_kwargs", {})), load_file(str(path)), str(path)


def _train_set(split: CocoSplit, tcfg: TrainConfig, cfg: MultiLabelConfig, store=None) -> TrainSet:
    rows = store.rows(list(split.paths)) if store is not None else None
    return TrainSet(split.root, split.samples(), train_transform_for(tcfg), tcfg.seed, rows=rows,
                    cache=cfg.cache_images)


def evaluate_map(model, split: CocoSplit, cfg: MultiLabelConfig, progress: bool = False) -> dict:
    """mAP (%) on `split`: each whole image resized to eval_input² (no crop: a crop could cut a labelled object)."""
    ds = EvalSet(split.root, split.paths, whole_image_transform(cfg.eval_input), cache=cfg.cache_images)
    logits = predict(model, ds, batch_size=cfg.eval_batch, workers=cfg.workers, progress=progress)
    out = mean_average_precision(split.targets, logits.numpy())
    # what the mAP is computed from, so the ledger can resample the images (relabel/outcomes.py)
    out["outcomes"] = {"map": O.encode_scores(logits.numpy(), split.targets,
                                              O.ids_hash(Path(p).as_posix() for p in split.paths))}
    return out


def annotator_samples(cfg: MultiLabelConfig, train_split: CocoSplit) -> tuple[Path, list[Sample]]:
    """(common root, samples) the mini annotator trains on: COCO train (multi-hot) + the extra class folders
    (one-hot), whose class names must be COCO's, in COCO's column order."""
    extra = Path(cfg.annotator.extra_images)
    samples = list(train_split.samples())
    if not cfg.annotator.extra_images:
        return train_split.root, samples
    classes, items = list_class_folders(extra)
    if tuple(classes) != train_split.class_names:
        raise ValueError(f"the extra images' classes {classes[:3]}... are not the COCO split's "
                         f"{list(train_split.class_names[:3])}...; the annotator needs one class list")
    root = Path(os.path.commonpath([extra.resolve(), train_split.root.resolve()]))
    coco_prefix = train_split.root.resolve().relative_to(root).as_posix()
    eye = np.eye(len(classes), dtype=np.float32)
    return root, ([Sample(p.resolve().relative_to(root).as_posix(), eye[k]) for p, k in items]
                  + [Sample(f"{coco_prefix}/{s.path}", s.label) for s in samples])


def annotator_checkpoint(cfg: MultiLabelConfig, train_split: CocoSplit) -> Path:
    """The mini multi-label annotator's checkpoint, fine-tuned here when missing — and again when its recipe or its
    init's recipe changed (the old checkpoint and training folder set aside as `.stale-<hash>`; relabel.stamped's
    artifact policy, which also sets aside one without an identity stamp)."""
    from relabel.checkpoint import read_meta, save_model
    from relabel.records import config_hash
    a = cfg.annotator
    ckpt = launch.checkpoint_path(ANNOTATOR_EXPERIMENT, cfg.scale, 0)
    want = config_hash(annotator_recipe(cfg))  # (JSON writes tuples and lists alike)

    def build():  # collective: every rank trains (DDP under torchrun), rank 0 writes the checkpoint
        from safetensors.torch import load_file
        init = _experiment_checkpoint(a.init, cfg.scale, 0)
        meta = read_meta(init)
        tcfg = a.train.replace(model=meta["arch"], model_kwargs=dict(meta.get("model_kwargs", {})),
                               num_classes=train_split.num_classes, seed=0)
        root, samples = annotator_samples(cfg, train_split)
        ds = TrainSet(root, samples, train_transform_for(tcfg), 0, cache=cfg.cache_images)
        res = train(tcfg, ds, ckpt.parent / "train", init=load_file(str(init)), workers=cfg.workers)
        if is_main():
            save_model(res.model, ckpt, arch=tcfg.model, model_kwargs=tcfg.model_kwargs,
                       num_classes=tcfg.num_classes, extra={"train_wall_s": res.wall_s, "init": str(init),
                                                            "train": tcfg.to_dict(), "config_hash": want})

    return stamped.artifact(ckpt, {"recipe": want}, build, collective=True, companions=(ckpt.parent / "train",))


def annotator_file(cfg: MultiLabelConfig, train_split: CocoSplit) -> Path:
    """The multi-label annotator's checkpoint file: fine-tuned here (mini) or RELABEL_COCO_ANNOTATOR_CKPT (full)."""
    a = cfg.annotator
    if a.train is None:
        if not a.checkpoint:
            raise FileNotFoundError("full scale needs a multi-label annotator: set RELABEL_COCO_ANNOTATOR_CKPT to a "
                                    "timm checkpoint (e.g. TResNet-XL, classes in COCO's sorted category order)")
        return Path(a.checkpoint)
    return annotator_checkpoint(cfg, train_split)


def machine_annotator(cfg: MultiLabelConfig, train_split: CocoSplit) -> tuple[torch.nn.Module, str]:
    """(the multi-label annotator in eval mode, read fully-convolutionally; its checkpoint path)."""
    from relabel.checkpoint import load_checkpoint
    a = cfg.annotator
    ckpt = annotator_file(cfg, train_split)
    return load_checkpoint(ckpt, (a.arch or None) if a.train is None else None, **a.read_kwargs).model, str(ckpt)


def _complete(path: Path) -> bool:
    return (path / "meta.json").is_file() and json.loads((path / "meta.json").read_text())["complete"]


def machine_store(cfg: MultiLabelConfig, split: CocoSplit) -> tuple[LabelMapStore, dict]:
    """The machine label maps of the train split (annotated once per annotator; resumable), and their provenance.
    Stamped with the annotator checkpoint's sha256, the settings and the split's fingerprint; at full scale the
    store is also named by the checkpoint (`machine@sha-<12>-...`), so another annotator gets other maps."""
    a = cfg.annotator
    ckpt = annotator_file(cfg, split)
    if not ckpt.is_file():
        raise FileNotFoundError(f"the multi-label annotator checkpoint {ckpt} does not exist; point "
                                "RELABEL_COCO_ANNOTATOR_CKPT at the file")
    sha = file_sha256(ckpt)
    name = "machine" if a.train is not None else f"machine@sha-{sha[:12]}"  # (mini names as they were)
    path = _root(cfg) / "stores" / f"{name}-{a.input_size}px-k{a.k}-{a.score_dtype}"
    ident = {"annotator_sha256": sha, "input_size": a.input_size, "k": a.k, "score_dtype": a.score_dtype,
             "dataset": dataset_fingerprint(list(split.paths))}

    def build():  # collective: every rank annotates its shard; rank 0 writes the provenance
        model, ckpt_path = machine_annotator(cfg, split)
        if model.get_classifier().weight.shape[0] != split.num_classes:
            raise ValueError(f"the annotator {ckpt_path} predicts {model.get_classifier().weight.shape[0]} classes, "
                             f"the COCO split has {split.num_classes}; use a checkpoint trained on these classes")
        st = annotate(model, split.root, list(split.paths), path, k=min(a.k, split.num_classes),
                      input_size=a.input_size, score_dtype=a.score_dtype, annotator=Path(ckpt_path).as_posix(),
                      class_names=list(split.class_names), batch_size=64, workers=cfg.workers)
        if is_main():
            write_json_atomic(path / "annotation.json", {**st, "annotator": ckpt_path, "annotator_sha256": sha})

    stamped.artifact(path, ident, build, ready=lambda: _complete(path), collective=True)
    store = LabelMapStore.open(path, dataset_paths=list(split.paths), dataset_sizes=file_sizes(split.root, split.paths),
                               class_names=list(split.class_names))
    if tuple(store.meta.grid) != tuple(cfg.map_grid):
        raise ValueError(f"the machine maps at {path} are {store.meta.grid[0]}×{store.meta.grid[1]}, the config says "
                         f"map_grid={cfg.map_grid}; set map_grid to the annotator's output grid")
    return store, json.loads((path / "annotation.json").read_text())


def oracle_store(cfg: MultiLabelConfig, split: CocoSplit) -> tuple[LabelMapStore, dict]:
    """The oracle label maps of the train split (instance masks on the map grid), and their provenance."""
    h, w = cfg.map_grid
    k = min(cfg.oracle_k, split.num_classes)
    path = _root(cfg) / "stores" / f"oracle-{h}x{w}-k{k}"
    ident = {"oracle": "instance masks", "grid": [h, w], "k": k, "dataset": dataset_fingerprint(list(split.paths))}
    stamped.artifact(path, ident, lambda: build_oracle_store(split, path, grid=cfg.map_grid, k=cfg.oracle_k),
                     ready=lambda: _complete(path))
    store = LabelMapStore.open(path, dataset_paths=list(split.paths), dataset_sizes=file_sizes(split.root, split.paths),
                               class_names=list(split.class_names))
    return store, json.loads((path / "annotation.json").read_text())


def run(cfg: MultiLabelConfig, workdir: str | Path, *, main_rank: bool = True) -> dict:
    """Trains one Table 10 cell (resuming from `workdir`) and returns its metrics, resolved config and costs."""
    workdir = Path(workdir)
    train_split, val_split = splits(cfg)
    arch, kwargs, state, init_from = pretrained_init(cfg)
    tcfg = cfg.train.replace(model=arch, model_kwargs=kwargs, num_classes=train_split.num_classes)
    store, maps = None, {}
    if cfg.row == "machine":
        store, maps = machine_store(cfg, train_split)
    elif cfg.row == "oracle":
        store, maps = oracle_store(cfg, train_split)
    res = train(tcfg, _train_set(train_split, tcfg, cfg, store), workdir / "train", store=store, init=state,
                workers=cfg.workers)
    t0 = time.time()
    metrics = evaluate_map(res.model, val_split, cfg)
    eval_s = time.time() - t0
    if main_rank:
        from relabel.checkpoint import save_model
        save_model(res.model, workdir / "model.safetensors", arch=arch, model_kwargs=kwargs,
                   num_classes=tcfg.num_classes, extra={"experiment": f"multilabel_coco/{cfg.arch}/{cfg.row}",
                                                        "eval_input_size": cfg.eval_input})
    return {"metrics": metrics, "train_config": tcfg, "init": init_from, "maps": maps, "train_wall_s": res.wall_s,
            "eval_wall_s": eval_s, "steps": res.steps, "train_size": len(train_split.paths),
            "val_size": len(val_split.paths), "positives_per_image": float(np.mean(val_split.targets.sum(1)))}
