"""Write the COCO-format split: multi-object scenes for detection and multi-label classification.

Layout: ``coco/{train,val}/<12-digit image id>.png`` and ``coco/annotations/instances_{train,val}.json`` with
``images``, ``annotations`` (bbox [x, y, w, h], area = visible pixels, iscrowd 0) and ``categories``. Images
are not square (W x H of 4:3, 3:4 and 1:1) so a transposed axis shows up as a wrong box. A visible mask that is
one hole-free component is stored as a polygon, any other as uncompressed RLE, so readers meet both kinds.
Category ids skip 6 on purpose: real COCO's 80 ids run 1..90 with gaps, so ids are never indices.
"""
from __future__ import annotations

from pathlib import Path

from .world_config import WorldConfig
from .formats import mask_polygons, rle_uncompressed, save_png, split_rng, write_json
from .scenes import sample_scene
from .sources import CLASS_NAMES, Sources

__all__ = ["COCO_CATEGORY_IDS", "write_coco"]

COCO_CATEGORY_IDS = tuple(k + 1 + (k >= 5) for k in range(len(CLASS_NAMES)))
_FIRST_ID = {"train": 1, "val": 500_001}  # disjoint image ids across splits, like COCO's


def write_coco(dest: Path, seed: int, cfg: WorldConfig, sources: Sources) -> dict:
    """Write both COCO splits; return image/annotation/polygon counts per split."""
    counts = {}
    for split, n, pool in (("train", cfg.n_coco_train, "fit"), ("val", cfg.n_coco_val, "heldout")):
        counts[split] = _write_split(dest / "coco", split, n, pool, seed, cfg, sources)
    return counts


def _write_split(root: Path, split: str, n: int, pool: str, seed: int, cfg: WorldConfig, sources: Sources) -> dict:
    params = cfg.scene_params()
    s = cfg.image_size
    shapes = ((s, s * 4 // 3), (s * 4 // 3, s), (s, s))  # (height, width)
    images, annotations, polygons = [], [], 0
    ann_id = _FIRST_ID[split]
    for i in range(n):
        rng = split_rng(seed, "coco/" + split, i)
        height, width = shapes[int(rng.integers(len(shapes)))]
        # COCO scenes are busier than ImageNet's: 2-5 objects of mostly different classes.
        n_obj = int(rng.integers(2, 6))
        classes = [int(c) for c in rng.integers(0, len(CLASS_NAMES), n_obj)]
        scene = sample_scene(rng, params, sources, pool, classes[0], height=height, width=width,
                             classes=classes, scale_range=(0.2, 0.8))
        image_id = _FIRST_ID[split] + i
        file_name = f"{image_id:012d}.png"
        save_png(root / split / file_name, scene.image)
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        for obj in scene.objects:
            if obj.box is None:
                continue
            x1, y1, x2, y2 = obj.box
            segmentation = mask_polygons(obj.mask)
            if segmentation is None:
                segmentation = rle_uncompressed(obj.mask)
            else:
                polygons += 1
            annotations.append({"id": ann_id, "image_id": image_id, "category_id": COCO_CATEGORY_IDS[obj.cls],
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": obj.area, "iscrowd": 0,
                                "segmentation": segmentation})
            ann_id += 1
    categories = [{"id": cid, "name": name, "supercategory": "digit"}
                  for cid, name in zip(COCO_CATEGORY_IDS, CLASS_NAMES)]
    write_json(root / "annotations" / f"instances_{split}.json", {
        "info": {"description": "relabel mini world (generated)", "version": "1"}, "licenses": [],
        "images": images, "annotations": annotations, "categories": categories})
    return {"images": n, "annotations": len(annotations), "polygons": polygons}
