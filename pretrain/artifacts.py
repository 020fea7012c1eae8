"""Shared pretraining artifacts per scale: the data, the machine annotator, label-map stores, the cleaned list.

Each is built once under `runs/<scale>/` behind a file lock and reused by every row and seed. Mini: the world is
generated, the annotator trained on its extra split and the train split annotated. Full: ImageNet from
IMAGENET_ROOT, and either the official released maps (RELABEL_OFFICIAL_MAPS, imported) or an annotator checkpoint
(RELABEL_ANNOTATOR_CKPT, run over the train set). Variants (fp16, 8-bit, top-k) are derived from one base store.
Annotators other than the default (Fig. 4's ladder, Fig. 6's KD teachers) live under `annotator/<name>/` with
stores named after them; Table 5's extra data is the extra split re-labelled by the annotator and class-balanced.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from pretrain.config import ANNOTATORS, annotator_config
from relabel import launch
from relabel.annotate import annotate
from relabel.checkpoint import load_model, read_meta, save_model
from relabel.data.readers import list_class_folders
from relabel.loader import Sample, TrainSet
from relabel.records import config_hash
from relabel.store import LabelMapStore, file_sizes, import_official
from relabel.train import set_aside_stale, train, train_transform_for


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


def annotator_checkpoint(cfg, name: str = "default") -> Path:
    """The annotator's safetensors: trained here on the extra split (mini) or the configured file (full)."""
    a = annotator_config(cfg, name)
    if a.train is None:
        if not a.checkpoint:
            var = "RELABEL_ANNOTATOR_CKPT" + ("" if name == "default" else f"_{name.upper()}")
            raise FileNotFoundError(f"full scale needs the annotator '{name}': set {var} to a .safetensors "
                                    "checkpoint of ours" + (", or RELABEL_OFFICIAL_MAPS to import the released "
                                                            "maps" if name == "default" else ""))
        return Path(a.checkpoint)
    wd = launch.workdir(f"annotator/{name}", cfg.scale, 0)
    ckpt = wd / "model.safetensors"
    want = config_hash(a.train.to_dict())
    with launch.artifact_lock(ckpt):
        got = read_meta(ckpt).get("extra", {}).get("config_hash") if ckpt.exists() else None
        if got is not None and got != want:  # (checkpoints from before the hash was stored are taken as they are)
            # another recipe's annotator: set aside and retrained; its label artifacts carry its recipe hash in
            # their names (_annotator_tag), so they are made anew too
            launch.set_aside(ckpt, got)
            print(f"{ckpt} was trained under another recipe of annotator '{name}': set aside, training afresh",
                  flush=True)
        if not ckpt.exists():
            root = world_dir(cfg) / "extra"
            ds = TrainSet(root, _samples(root), train_transform_for(a.train), seed=0, cache=cfg.cache_images)
            set_aside_stale(wd / "train", a.train)
            res = train(a.train, ds, wd / "train", workers=cfg.workers)
            save_model(res.model, ckpt, arch=a.train.model, model_kwargs=a.train.model_kwargs,
                       num_classes=a.train.num_classes, extra={"train_wall_s": res.wall_s, "config_hash": want})
    return ckpt


def annotator(cfg, name: str = "default") -> tuple[torch.nn.Module, float]:
    """(the annotator in eval mode, read fully-convolutionally, seconds spent training it here)."""
    ckpt = annotator_checkpoint(cfg, name)
    return load_model(ckpt, **annotator_config(cfg, name).read_kwargs), 0.0


def annotator_train_seconds(cfg, name: str = "default") -> float:
    """Seconds it took to train the annotator here (0 for an external checkpoint); not part of a row's cost."""
    return float(read_meta(annotator_checkpoint(cfg, name)).get("extra", {}).get("train_wall_s", 0.0))


def annotator_gflops(cfg, name: str = "default") -> float:
    """Multiply-adds (G) of one annotation forward: the dense-map reading at the annotator's input size."""
    from pretrain.experiments import model_stats
    return model_stats(annotator(cfg, name)[0], annotator_config(cfg, name).input_size)["gflops"]


def teacher(cfg, name: str) -> tuple[torch.nn.Module, int, float]:
    """A KD teacher (Fig. 6): the annotator `name` as a plain classifier in eval mode, the input size it was
    trained at (the student's crop is resized to it, App. D.3) and its multiply-adds (G) per forward there."""
    from pretrain.experiments import model_stats
    model = load_model(annotator_checkpoint(cfg, name))
    size = annotator_config(cfg, name).input_size
    return model, size, model_stats(model, size)["gflops"]


def _base_k(cfg) -> int:
    return 5 if cfg.annotator.official_maps else min(10, cfg.target.num_classes)


def _annotator_tag(cfg, name: str) -> str:
    """An annotator's name with the hash of its training recipe (mini), as its artifacts are named: the maps, the
    extra-data subset and the clean list of an annotator re-trained under another recipe are made anew instead of
    outliving it. External checkpoints (full) and the oracle keep their plain name."""
    if name not in ANNOTATORS:
        return name
    a = annotator_config(cfg, name)
    return name if a.train is None else f"{name}@{config_hash(a.train.to_dict())[:8]}"


def _store_path(cfg, dtype: str, k: int, name: str = "default", tag: str = "") -> Path:
    return _artifacts(cfg) / "stores" / f"{_annotator_tag(cfg, name)}-{tag + '-' if tag else ''}{dtype}-k{k}"


def _open(path: Path, root: Path, paths: list[str]) -> LabelMapStore:
    return LabelMapStore.open(path, dataset_paths=paths, dataset_sizes=file_sizes(root, paths))


def label_store(cfg, dtype: str = "float32", k: int = 5, annotator_name: str = "default"
                ) -> tuple[LabelMapStore, float]:
    """(the store of the train split at this dtype and k, seconds its annotation took), building it if missing."""
    root, samples = train_samples(cfg)
    return _store_of(cfg, root, [s.path for s in samples], dtype, k, annotator_name)


def oracle_grid(cfg) -> tuple[int, int]:
    """The default annotator's map grid (input size / output stride), which the oracle maps share."""
    a = cfg.annotator
    g = a.input_size // a.read_kwargs.get("output_stride", 32)
    return (g, g)


def annotation_job(cfg, annotator_name: str = "default", tag: str = "") -> dict:
    """The annotation job behind a built store: {'images', 'seconds', ...} (images = annotator forwards)."""
    base = _store_path(cfg, "float32", _base_k(cfg), annotator_name, tag)
    return json.loads((base / "annotation.json").read_text())


def _store_of(cfg, root: Path, paths: list[str], dtype: str, k: int, annotator_name: str = "default",
              tag: str = "") -> tuple[LabelMapStore, float]:
    kb = _base_k(cfg)
    if k > kb:
        raise ValueError(f"top-{k} maps need a base store with k >= {k}, but this scale's base has k={kb}")
    official = cfg.annotator.official_maps if annotator_name == "default" and not tag else ""
    base = _store_path(cfg, "float32", kb, annotator_name, tag)
    with launch.artifact_lock(base):
        if not (base / "meta.json").exists() or not json.loads((base / "meta.json").read_text())["complete"]:
            if official:
                import_official(official, base, image_paths=paths)
                (base / "annotation.json").write_text(json.dumps({"seconds": 0.0, "source": "official"}))
            elif annotator_name == "oracle":  # mini only: the world's own masks as the annotator (pretrain/oracle.py)
                if cfg.scale != "mini" or tag:
                    raise ValueError("oracle label maps exist only for the mini world's train split (its masks)")
                from pretrain import oracle
                oracle.build_store(root, paths, base, cfg.target.num_classes, oracle_grid(cfg), k=kb)
            else:
                model, _ = annotator(cfg, annotator_name)
                a = annotator_config(cfg, annotator_name)
                st = annotate(model, root, paths, base, k=kb, input_size=a.input_size, score_dtype="float32",
                              annotator=a.train.model if a.train else Path(a.checkpoint).stem,
                              batch_size=64, workers=cfg.workers)
                (base / "annotation.json").write_text(json.dumps({**st, "annotator": annotator_name}))
    seconds = json.loads((base / "annotation.json").read_text()).get("seconds", 0.0)
    if (dtype, k) == ("float32", kb):
        return _open(base, root, paths), seconds
    path = _store_path(cfg, dtype, k, annotator_name, tag)
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


def _global_scores(store: LabelMapStore, paths: list[str], num_classes: int, batch: int = 512) -> torch.Tensor:
    """[N, C] spatial mean of each image's top-k map (absent classes at 0): the annotator's global logits."""
    out = []
    for i in range(0, len(paths), batch):
        s, idx = store.read_batch(store.rows(paths[i:i + batch]))
        dense = torch.zeros(len(s), num_classes).scatter_add_(1, idx.flatten(1).long(), s.float().flatten(1))
        out.append(dense / (s.shape[2] * s.shape[3]))
    return torch.cat(out)


def extra_dir(cfg) -> Path:
    """Table 5's extra images: the mini world's extra split (the annotator's own training set), or ImageNet-21K."""
    if cfg.scale == "mini":
        return world_dir(cfg) / "extra"
    if not cfg.extra_root or not Path(cfg.extra_root).is_dir():
        raise FileNotFoundError("Table 5's extra data needs IMAGENET21K_ROOT: a folder of ImageNet-21K images in "
                                "class folders (their own labels are not used)")
    return Path(cfg.extra_root)


def extra_subset(cfg, annotator_name: str = "default") -> tuple[list[Sample], float]:
    """Table 5's extra data: every extra image re-labelled by the annotator (its label = the annotator's global
    top-1; the original label is dropped) and sub-sampled class-balanced, at most `cfg.extra_per_class` per top-1
    class, most confident first (paper §4.3: 4M of ImageNet-21K's 14M, balanced as in Noisy Student).
    Returns (samples relative to extra_dir, seconds the annotation of the extra images took)."""
    root = extra_dir(cfg)
    name = f"{_annotator_tag(cfg, annotator_name)}-extra-balanced{cfg.extra_per_class}.json"
    out = _artifacts(cfg) / "stores" / name
    with launch.artifact_lock(out):
        if not out.exists():
            paths = [s.path for s in _samples(root)]
            store, _ = _store_of(cfg, root, paths, "float32", _base_k(cfg), annotator_name, tag="extra")
            probs = torch.softmax(_global_scores(store, paths, cfg.target.num_classes), 1)
            conf, top1 = probs.max(1)
            by_class: dict = {}
            for path, c, p in zip(paths, top1.tolist(), conf.tolist()):
                by_class.setdefault(c, []).append((-p, path))
            keep = [(path, c) for c in sorted(by_class) for _, path in sorted(by_class[c])[:cfg.extra_per_class]]
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps({"images": keep, "per_class": {str(c): min(len(v), cfg.extra_per_class)
                                                                      for c, v in sorted(by_class.items())},
                                       "of": len(paths)}))
            tmp.replace(out)
    seconds = annotation_job(cfg, annotator_name, "extra").get("seconds", 0.0)
    return [Sample(p, int(c)) for p, c in json.loads(out.read_text())["images"]], seconds


def train_with_extra(cfg, dtype: str = "float32", k: int = 5, annotator_name: str = "default"
                     ) -> tuple[Path, list[Sample], LabelMapStore, float]:
    """(root, train + balanced extra samples relative to root, their label-map store, annotation seconds of both
    the extra split and this store): the training set of Table 5's '+ extra data' row."""
    troot, tsamples = train_samples(cfg)
    extra, extra_seconds = extra_subset(cfg, annotator_name)
    eroot = extra_dir(cfg)
    root = Path(os.path.commonpath([troot.resolve(), eroot.resolve()]))
    pt, pe = troot.resolve().relative_to(root).as_posix(), eroot.resolve().relative_to(root).as_posix()
    samples = ([Sample(f"{pt}/{s.path}", s.label) for s in tsamples]
               + [Sample(f"{pe}/{s.path}", s.label) for s in extra])
    store, seconds = _store_of(cfg, root, [s.path for s in samples], dtype, k, annotator_name,
                               tag=f"trainextra{cfg.extra_per_class}")
    return root, samples, store, seconds + extra_seconds


def clean_list(cfg) -> set[str]:
    """Relative paths kept by label cleaning (Beyer et al.): their list at full scale; at mini, the images whose
    label is the annotator's global top-1 (a strong model agreeing with the original label)."""
    if cfg.scale == "full":
        if not cfg.clean_list:
            raise FileNotFoundError("set RELABEL_CLEAN_LIST to Beyer et al.'s fnames_clean.txt")
        names = {Path(l.strip()).name for l in Path(cfg.clean_list).read_text().splitlines() if l.strip()}
        return {s.path for s in train_samples(cfg)[1] if Path(s.path).name in names}
    out = _artifacts(cfg) / "stores" / f"clean_list-{_annotator_tag(cfg, 'default')}.txt"
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
