"""Byte-deterministic writers for the mini world: PNG, JSON, COCO RLE and polygon masks, per-split annotations.

Same seed must give byte-identical files, so PNGs are written by PIL with fixed parameters and no metadata,
JSON with sorted keys and fixed separators, and nothing records a time or a host.
"""
from __future__ import annotations

import hashlib
import io
import json
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = ["save_png", "png_bytes", "write_json", "rle_compressed", "rle_uncompressed", "mask_polygons",
           "scene_record", "split_rng", "CONFUSABLE"]

# Digit pairs people confuse; Shankar-style "wrong" proposals (labels a model suggested and raters rejected).
CONFUSABLE = {0: (6, 8), 1: (7, 4), 2: (7, 3), 3: (8, 5), 4: (9, 1), 5: (6, 3), 6: (5, 0), 7: (1, 2), 8: (3, 0),
              9: (4, 8)}


def split_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """Independent stream per (seed, split, image): images never depend on how many came before them."""
    return np.random.default_rng([seed, zlib.crc32(split.encode()), index])


def png_bytes(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG", compress_level=6, optimize=False)
    return buf.getvalue()


def save_png(path: Path, image: np.ndarray) -> str:
    """Write ``image`` (uint8 HxWx3) as PNG, creating folders; return the sha1 of the bytes (ImageNetV2 names)."""
    data = png_bytes(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return hashlib.sha1(data).hexdigest()


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, sort_keys=True, separators=(",", ":")) + "\n")


def rle_compressed(mask: np.ndarray) -> dict:
    """COCO compressed RLE (``counts`` a string), as pycocotools writes it; decodes with ``mask.decode``."""
    from pycocotools import mask as mask_utils
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def rle_uncompressed(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE: run lengths over the column-major pixel order, starting with a run of zeros."""
    flat = mask.astype(np.uint8).flatten(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def mask_polygons(mask: np.ndarray) -> list[list[float]] | None:
    """COCO polygons ([x0, y0, x1, y1, ...], x along the width) tracing a mask with one component and no holes;
    None when polygons cannot represent the mask (several components or holes: COCO unions polygons)."""
    from skimage import measure
    if measure.label(mask, connectivity=1).max() != 1 or measure.euler_number(mask, connectivity=1) != 1:
        return None
    padded = np.pad(mask.astype(np.float32), 1)
    contours = measure.find_contours(padded, 0.5)
    if len(contours) != 1:
        return None
    rc = contours[0] - 1.0  # undo the pad; (row, col) of pixel centres
    # Pixel (r, c) covers [c, c+1] x [r, r+1] in COCO coordinates, so its centre is at (c + 0.5, r + 0.5).
    xy = np.stack([rc[:, 1] + 0.5, rc[:, 0] + 0.5], axis=1)
    return [[round(float(v), 2) for v in xy.ravel()]] if len(xy) >= 3 else None


def scene_record(file: str, scene, threshold: float) -> dict:
    """One image's annotation: single label, true/unclear label sets, and objects (class, box, visible, mask)."""
    from .scenes import true_labels, unclear_labels
    h, w = scene.image.shape[:2]
    objects = [{"class": o.cls, "box": list(o.box), "visible": round(o.visible, 4), "area": o.area,
                "mask": rle_compressed(o.mask)} for o in scene.objects if o.box is not None]
    return {"file": file, "height": h, "width": w, "label": scene.label,
            "true_labels": true_labels(scene, threshold), "unclear_labels": unclear_labels(scene, threshold),
            "objects": objects}
