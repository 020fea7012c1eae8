"""Oracle label maps of the mini world's train split: the world's own object masks as a perfect annotator.

Not a row of the paper. It separates the two things ReLabel needs: LabelPooling (crop-level labels) and a strong
annotator. Each class's cell value is `logit_scale` × the fraction of the cell its visible mask covers (masks from
the train split's `annotations.json`, area-averaged onto the annotator's grid by
relabel.masks), stored as logits in the same top-k store, so LabelPooling treats them like an annotator's map: a
crop that holds mostly one object gets a confident label, a crop of background a flat one.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_utils

from relabel.masks import resize_masks
from relabel.store import LabelMapStore, file_sizes

LOGIT_SCALE = 30.0  # a fully covered cell's logit: a confident annotator (EfficientNet-L2's top logits reach ~10-20)


def oracle_maps(annotations: dict, paths: list[str], num_classes: int, grid: tuple[int, int],
                logit_scale: float = LOGIT_SCALE) -> np.ndarray:
    """[N, C, h, w] float32: per image, per class, `logit_scale` × the cell coverage of the union of its masks."""
    by_file = {im["file"]: im for im in annotations["images"]}
    out = np.zeros((len(paths), num_classes, *grid), np.float32)
    for i, p in enumerate(paths):
        im = by_file.get(p)
        if im is None:
            raise KeyError(f"{p} has no entry in the split's annotations.json; rebuild the world")
        masks = np.zeros((num_classes, im["height"], im["width"]), np.uint8)
        for o in im["objects"]:
            masks[o["class"]] |= mask_utils.decode(o["mask"]).astype(np.uint8)
        out[i] = logit_scale * resize_masks(masks, grid)
    return out


def build_store(root: str | Path, paths: list[str], path: str | Path, num_classes: int, grid: tuple[int, int],
                k: int = 10) -> LabelMapStore:
    """Writes (once) the oracle store of the split at `root` (a folder with annotations.json) and opens it."""
    root, path = Path(root), Path(path)
    sizes = file_sizes(root, paths)
    meta = path / "meta.json"
    if not (meta.exists() and json.loads(meta.read_text())["complete"]):
        t0 = time.time()
        maps = oracle_maps(json.loads((root / "annotations.json").read_text()), paths, num_classes, grid)
        k = min(k, num_classes)
        top = np.argsort(-maps, axis=1, kind="stable")[:, :k]
        w = LabelMapStore.create(path, paths, num_classes=num_classes, k=k, grid=grid, score_dtype="float32",
                                 annotator="oracle:world-masks", sizes=sizes)
        w.write(np.arange(len(paths)), np.take_along_axis(maps, top, 1), top)
        w.finalize()
        (path / "annotation.json").write_text(json.dumps({"seconds": time.time() - t0, "source": "oracle"}))
    return LabelMapStore.open(path, dataset_paths=paths, dataset_sizes=sizes)
