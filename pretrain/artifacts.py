"""Shared pretraining artifacts per scale: the data, the machine annotator, label-map stores, the cleaned list.

Each is built once under `runs/<scale>/` behind a file lock and reused by every row and seed. Mini: the world is
generated, the annotator trained on its extra split and the train split annotated. Full: ImageNet from
IMAGENET_ROOT, and either the official released maps (RELABEL_OFFICIAL_MAPS, imported) or an annotator checkpoint
(RELABEL_ANNOTATOR_CKPT, run over the train set). Variants (fp16, 8-bit, top-k) are derived from one base store.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from relabel import launch
from relabel.annotate import annotate
from relabel.checkpoint import load_model, save_model
from relabel.data.readers import list_class_folders
from relabel.loader import Sample, TrainSet
from relabel.store import LabelMapStore, file_sizes, import_official
from relabel.train import train, train_transform_for


def world_dir(cfg) -> Path:
    if cfg.scale == "mini":
        from relabel.data import ensure_world
        return ensure_world(cfg.data_root, seed=0, log=lambda m: print(m, flush=True))
    root = Path(cfg.data_root)
    if not (root / "train").is_dir():
        raise FileNotFoundError(f"ImageNet root {root} has no train/ folder; set IMAGENET_ROOT to a folder with "
                                "train/<wnid>/*.JPEG and val/<wnid>/*.JPEG")
    return root


def dataset_name(cfg) -> str:
    return world_dir(cfg).name if cfg.scale == "mini" else "imagenet-1k"


def _samples(root: Path) -> list[Sample]:
    _, items = list_class_folders(root)
    return [Sample(p.relative_to(root).as_posix(), k) for p, k in items]


def train_samples(cfg) -> tuple[Path, list[Sample]]:
    root = world_dir(cfg) / "train"
    return root, _samples(root)


def _artifacts(cfg) -> Path:
    return launch.runs_root() / cfg.scale


def annotator(cfg) -> tuple[torch.nn.Module, float]:
    """(the annotator in eval mode, seconds spent training it here)."""
    a = cfg.annotator
    if a.train is None:
        if not a.checkpoint:
            raise FileNotFoundError("full scale needs an annotator: set RELABEL_ANNOTATOR_CKPT to a .safetensors "
                                    "checkpoint of ours, or RELABEL_OFFICIAL_MAPS to import the released maps")
        return load_model(a.checkpoint, **a.read_kwargs), 0.0
    wd = launch.workdir("annotator/default", cfg.scale, 0)
    ckpt = wd / "model.safetensors"
    with launch.artifact_lock(ckpt):
        if not ckpt.exists():
            root = world_dir(cfg) / "extra"
            ds = TrainSet(root, _samples(root), train_transform_for(a.train), seed=0, cache=cfg.cache_images)
            res = train(a.train, ds, wd / "train", workers=cfg.workers)
            save_model(res.model, ckpt, arch=a.train.model, model_kwargs=a.train.model_kwargs,
                       num_classes=a.train.num_classes, extra={"train_wall_s": res.wall_s})
    return load_model(ckpt, **a.read_kwargs), 0.0


def _base_k(cfg) -> int:
    return 5 if cfg.annotator.official_maps else min(10, cfg.target.num_classes)


def _store_path(cfg, dtype: str, k: int) -> Path:
    return _artifacts(cfg) / "stores" / f"default-{dtype}-k{k}"


def _open(path: Path, root: Path, paths: list[str]) -> LabelMapStore:
    return LabelMapStore.open(path, dataset_paths=paths, dataset_sizes=file_sizes(root, paths))


def label_store(cfg, dtype: str = "float32", k: int = 5) -> tuple[LabelMapStore, float]:
    """(the store of the train split at this dtype and k, seconds its annotation took), building it if missing."""
    root, samples = train_samples(cfg)
    paths = [s.path for s in samples]
    kb = _base_k(cfg)
    if k > kb:
        raise ValueError(f"top-{k} maps need a base store with k >= {k}, but this scale's base has k={kb}")
    base = _store_path(cfg, "float32", kb)
    with launch.artifact_lock(base):
        if not (base / "meta.json").exists() or not json.loads((base / "meta.json").read_text())["complete"]:
            if cfg.annotator.official_maps:
                import_official(cfg.annotator.official_maps, base, image_paths=paths)
                (base / "annotation.json").write_text(json.dumps({"seconds": 0.0, "source": "official"}))
            else:
                model, _ = annotator(cfg)
                a = cfg.annotator
                st = annotate(model, root, paths, base, k=kb, input_size=a.input_size, score_dtype="float32",
                              annotator=a.train.model if a.train else Path(a.checkpoint).stem,
                              batch_size=64, workers=cfg.workers)
                (base / "annotation.json").write_text(json.dumps(st))
    seconds = json.loads((base / "annotation.json").read_text()).get("seconds", 0.0)
    if (dtype, k) == ("float32", kb):
        return _open(base, root, paths), seconds
    path = _store_path(cfg, dtype, k)
    with launch.artifact_lock(path):
        if not (path / "meta.json").exists() or not json.loads((path / "meta.json").read_text())["complete"]:
            derive_store(_open(base, root, paths), path, dtype, k, root, paths)
    return _open(path, root, paths), seconds


def derive_store(base: LabelMapStore, path: Path, dtype: str, k: int, root: Path, paths: list[str],
                 batch: int = 512) -> LabelMapStore:
    """A store with the top-k of `base` at another score dtype (Table 6), without re-running the annotator."""
    m = base.meta
    w = LabelMapStore.create(path, paths, num_classes=m.num_classes, k=k, grid=m.grid, score_dtype=dtype,
                             annotator=m.annotator, input_size=m.input_size, sizes=file_sizes(root, paths))
    if w.meta.fingerprint != m.fingerprint:
        raise ValueError(f"{path} and its base store {base.path} describe different datasets")
    rows = w.missing()  # both stores hold the same sorted paths, so row i is the same image in each
    for i in range(0, len(rows), batch):
        s, idx = base.read_batch(rows[i:i + batch])
        top = s.topk(k, dim=1)
        w.write(rows[i:i + batch], top.values, idx.gather(1, top.indices))
    return w.finalize()


def clean_list(cfg) -> set[str]:
    """Relative paths kept by label cleaning (Beyer et al.): their list at full scale; at mini, the images whose
    label is the annotator's global top-1 (a strong model agreeing with the original label)."""
    if cfg.scale == "full":
        if not cfg.clean_list:
            raise FileNotFoundError("set RELABEL_CLEAN_LIST to Beyer et al.'s fnames_clean.txt")
        names = {Path(l.strip()).name for l in Path(cfg.clean_list).read_text().splitlines() if l.strip()}
        return {s.path for s in train_samples(cfg)[1] if Path(s.path).name in names}
    out = _artifacts(cfg) / "stores" / "clean_list.txt"
    with launch.artifact_lock(out):
        if not out.exists():
            root, samples = train_samples(cfg)
            store, _ = label_store(cfg, "float32", _base_k(cfg))
            keep = []
            for i in range(0, len(samples), 512):
                chunk = samples[i:i + 512]
                s, idx = store.read_batch(store.rows([x.path for x in chunk]))
                dense = torch.zeros(len(chunk), cfg.target.num_classes).scatter_add_(
                    1, idx.flatten(1), s.flatten(1))
                keep += [x.path for x, top in zip(chunk, dense.argmax(1).tolist()) if top == x.label]
            tmp = out.with_suffix(".tmp")
            tmp.write_text("\n".join(keep) + "\n")
            tmp.replace(out)
    return {l for l in out.read_text().splitlines() if l}


def val_boxes(cfg) -> tuple[list, list, str]:
    """Boxes of each val image's labelled class and image sizes (width, height), for Fig. 2."""
    if cfg.scale == "mini":
        ann = json.loads((world_dir(cfg) / "val" / "annotations.json").read_text())
        boxes = [[o["box"] for o in im["objects"] if o["class"] == im["label"]] for im in ann["images"]]
        return boxes, [(im["width"], im["height"]) for im in ann["images"]], "val"
    import os
    from relabel.data.readers import read_voc_boxes
    folder = os.environ.get("IMAGENET_VAL_BOXES")
    if not folder:
        raise FileNotFoundError("set IMAGENET_VAL_BOXES to the folder of ImageNet val bounding-box XML files")
    boxes, sizes = [], []
    for xml in sorted(Path(folder).glob("*.xml")):
        size, objs = read_voc_boxes(xml)
        boxes.append([b for _, b in objs])
        sizes.append(size)
    return boxes, sizes, "val"


def data_roots(cfg):
    from relabel import evaluators as E
    return E.DataRoots.mini(world_dir(cfg)) if cfg.scale == "mini" else E.DataRoots.full(cfg.data_root)
