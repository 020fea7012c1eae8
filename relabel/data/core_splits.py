"""Write the ImageNet-like splits: ``train`` and ``extra`` (ImageFolder + boxes) and ``val`` (+ ReaL and Shankar).

Layouts (class folders ``digit0`` .. ``digit9``; sorted folder name = class index, as for ImageNet wnids):

* ``train/<class>/<class>_<8-digit n>.png`` + ``train/annotations.json``
* ``extra/<class>/<class>_<8-digit n>.png`` + ``extra/annotations.json``: object-centric images (one digit
  filling 50-100% of the frame on a photo crop), the mini analogue of the clean extra data the machine
  annotator learns from; boxes are recorded so patches can be re-cut.
* ``val/<class>/val_<8-digit index>.png`` + ``val/annotations.json``, ``val/real.json`` (entry i = true class
  set of the image with index i + 1) and ``val/shankar.json`` (Shankar et al. format, keyed by file name).

``annotations.json``: ``{"classes": [...], "images": [{"file", "height", "width", "label", "true_labels",
"unclear_labels", "objects": [{"class", "box": [x1, y1, x2, y2], "visible", "area", "mask": COCO RLE}]}]}``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .world_config import WorldConfig
from .formats import CONFUSABLE, save_png, scene_record, split_rng, write_json
from .scenes import Scene, sample_scene
from .sources import CLASS_NAMES, Sources

__all__ = ["write_scene_folder", "write_val", "selection_frequency", "balanced_classes"]


def balanced_classes(seed: int, split: str, n: int, classes=range(len(CLASS_NAMES))) -> np.ndarray:
    """``n`` class indices, as balanced as ``n`` allows, in a seeded random order."""
    classes = np.asarray(list(classes))
    order = np.resize(classes, n)
    return order[split_rng(seed, split + "/order", 0).permutation(n)]


def write_scene_folder(dest: Path, split: str, seed: int, cfg: WorldConfig, sources: Sources, n: int,
                       pool: str, object_centric: bool = False, keep: int = 0) -> tuple[list[Scene], dict]:
    """Generate ``n`` scenes into ``dest/<split>/<class>/`` with ``annotations.json``; return the first ``keep``
    scenes (kept in memory for later splits) and counts."""
    params = cfg.scene_params()
    labels = balanced_classes(seed, split, n)
    scenes, records = [], []
    for i, cls in enumerate(labels, start=1):
        rng = split_rng(seed, split, i)
        if object_centric:
            scene = sample_scene(rng, params, sources, pool, int(cls), n_objects=1, scale_range=(0.5, 1.0))
        else:
            scene = sample_scene(rng, params, sources, pool, int(cls))
        name = CLASS_NAMES[scene.label]
        file = f"{name}/{name}_{i:08d}.png"
        save_png(dest / split / file, scene.image)
        records.append(scene_record(file, scene, cfg.visibility_threshold))
        if len(scenes) < keep:
            scenes.append(scene)
    records.sort(key=lambda r: r["file"])
    write_json(dest / split / "annotations.json", {"classes": list(CLASS_NAMES), "images": records})
    return scenes, {"images": n, "objects": sum(len(r["objects"]) for r in records)}


def selection_frequency(rng: np.random.Generator, scene: Scene, size: int, n_workers: int = 10) -> float:
    """Simulated MTurk selection frequency (ImageNetV2): the share of ``n_workers`` who say the labelled class is
    in the image; each says yes with probability = visible fraction x a size factor of its best instance."""
    best = 0.0
    for o in scene.objects:
        if o.cls == scene.label and o.box is not None:
            best = max(best, o.visible * min(1.0, np.sqrt(o.area / (0.1 * size * size))))
    return float(rng.binomial(n_workers, best) / n_workers)


def write_val(dest: Path, seed: int, cfg: WorldConfig, sources: Sources) -> tuple[list[Scene], dict]:
    """Write ``val`` with ReaL and Shankar label files; return the scenes (in index order) and counts."""
    params = cfg.scene_params()
    labels = balanced_classes(seed, "val", cfg.n_val)
    scenes, records, real = [], [], []
    shankar = {"initial_annots": {}, "problematic_images": {}, "imagenet_m": []}
    sel_freq = []
    for i, cls in enumerate(labels, start=1):
        rng = split_rng(seed, "val", i)
        scene = sample_scene(rng, params, sources, "heldout", int(cls))
        fname = f"val_{i:08d}.png"
        file = f"{CLASS_NAMES[scene.label]}/{fname}"
        save_png(dest / "val" / file, scene.image)
        record = scene_record(file, scene, cfg.visibility_threshold)
        records.append(record)
        real.append(record["true_labels"])
        correct, unclear = record["true_labels"], record["unclear_labels"]
        wrong = sorted(set(CONFUSABLE[scene.label]) - set(correct) - set(unclear))
        shankar["initial_annots"][fname] = {"correct": [CLASS_NAMES[c] for c in correct],
                                            "unclear": [CLASS_NAMES[c] for c in unclear],
                                            "wrong": [CLASS_NAMES[c] for c in wrong]}
        if not correct:
            shankar["problematic_images"][fname] = "no class clearly visible"
        elif scene.label not in correct:
            # ImageNet-M in spirit: the original label itself is a mistake (its object is barely visible).
            shankar["imagenet_m"].append(fname)
        sel_freq.append(selection_frequency(rng, scene, cfg.image_size))
        scenes.append(scene)
    records.sort(key=lambda r: r["file"])
    write_json(dest / "val" / "annotations.json", {"classes": list(CLASS_NAMES), "images": records})
    write_json(dest / "val" / "real.json", real)
    write_json(dest / "val" / "shankar.json", shankar)
    counts = {"images": cfg.n_val, "objects": sum(len(r["objects"]) for r in records),
              "real_empty": sum(not r for r in real), "shankar_problematic": len(shankar["problematic_images"]),
              "imagenet_m": len(shankar["imagenet_m"])}
    return scenes, {"counts": counts, "selection_frequency": sel_freq}
