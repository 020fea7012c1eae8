"""Oracle label maps (Table 10): COCO instance masks → per-class coverage maps on the label-map grid → a store.

Paper §4.3: "we utilize the segmentation ground truth of COCO as label maps L ∈ {0,1}^{H×W×C} (an oracle case of
ReLabel)". Per image, each class's mask is the union of its instances' masks (pycocotools decodes polygons,
uncompressed and compressed RLE alike); the H×W mask is resized to the store's h×w grid by exact area
averaging, so a cell holds the fraction of its area the class covers (values in [0, 1]; a binary map at full
resolution stays exact at any grid). The whole image maps to the grid, squashed like the machine annotator's
input (relabel.annotate), so crop boxes in [0, 1] image coordinates pool both kinds of map the same way.

The maps go into the same top-k `LabelMapStore` as ImageNet's: at each location the k largest coverages are kept.
With k ≥ the most classes any image holds nothing is dropped; otherwise the dropped coverage is reported.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from relabel.masks import resize_masks
from relabel.store import LabelMapStore, file_sizes
from multilabel_coco.data import CocoSplit


def class_masks(coco, image_id: int, cat_ids) -> np.ndarray:
    """[C, H, W] uint8: per column of `cat_ids`, the union of that class's instance masks in the image."""
    img = coco.imgs[image_id]
    column = {c: k for k, c in enumerate(cat_ids)}
    out = np.zeros((len(cat_ids), img["height"], img["width"]), np.uint8)
    for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id], iscrowd=None)):
        if ann["category_id"] in column:
            out[column[ann["category_id"]]] |= coco.annToMask(ann).astype(np.uint8)
    return out


def oracle_map(coco, image_id: int, cat_ids, grid: tuple[int, int]) -> np.ndarray:
    """The oracle label map [C, h, w] of one image: per-class mask coverage of every grid cell."""
    return resize_masks(class_masks(coco, image_id, cat_ids), grid)


def build_oracle_store(split: CocoSplit, store_path: str | os.PathLike, *, grid: tuple[int, int], k: int,
                       score_dtype: str = "float32", chunk: int = 256, log=print) -> LabelMapStore:
    """Writes (or completes, or reopens) the oracle store of `split`; `annotation.json` holds its cost and the
    coverage lost to the top-k cut (0 when k covers every image's classes)."""
    store_path = Path(store_path)
    sizes = file_sizes(split.root, split.paths)
    if (store_path / "meta.json").is_file() and json.loads((store_path / "meta.json").read_text())["complete"]:
        return LabelMapStore.open(store_path, dataset_paths=list(split.paths), dataset_sizes=sizes,
                                  class_names=list(split.class_names))
    k = min(k, split.num_classes)
    writer = LabelMapStore.create(store_path, list(split.paths), num_classes=split.num_classes, k=k, grid=grid,
                                  score_dtype=score_dtype, annotator="oracle:coco-instance-masks",
                                  class_names=list(split.class_names), sizes=sizes)
    coco = split.coco()
    rows = writer.rows(list(split.paths))
    todo = set(writer.missing().tolist())
    t0, dropped, total = time.time(), 0.0, 0.0
    items = [i for i, r in enumerate(rows) if int(r) in todo]
    for start in range(0, len(items), chunk):
        part = items[start:start + chunk]
        maps = torch.from_numpy(np.stack([oracle_map(coco, split.image_ids[i], split.cat_ids, grid) for i in part]))
        top = maps.topk(k, dim=1)
        total += float(maps.sum())
        dropped += float(maps.sum() - top.values.sum())
        writer.write(rows[part], top.values, top.indices)
        writer.flush()
    store = writer.finalize()
    seconds = time.time() - t0
    stats = {"seconds": seconds, "images": len(items), "grid": list(grid), "k": k,
             "dropped_coverage_fraction": dropped / total if total else 0.0}
    (store_path / "annotation.json").write_text(json.dumps(stats))
    log(f"oracle label maps: {len(items)} images in {seconds:.1f}s → {store_path} (top-{k}, {grid[0]}×{grid[1]})")
    return store
