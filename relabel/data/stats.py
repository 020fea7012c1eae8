"""Dataset statistics the mini world is calibrated to: Fig. 2 crop-vs-box IoU and the ReaL multi-label fraction.

Fig. 2 of the paper draws 100 RandomResizedCrop(scale 0.08-1, ratio 3/4-4/3) crops per ImageNet val image and
reports the CDF of each crop's IoU with the best-matching ground-truth box: 8% of crops have no overlap, 23.5%
have IoU > 0.5. ``crop_iou_stats`` reproduces that protocol with torchvision's own ``get_params`` and works the
same on real ImageNet boxes (``make fig2``) and on the mini world's boxes.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

__all__ = ["box_iou", "crop_iou_stats", "multilabel_fraction", "PAPER_FIG2", "PAPER_REAL_MULTILABEL"]

# Paper Fig. 2 (text): fraction of crops with no overlap / with IoU > 0.5 against the GT boxes.
PAPER_FIG2 = {"no_overlap": 0.08, "iou_gt_0.5": 0.235}
# ImageNet-ReaL: fraction of scored (non-empty) images whose label set has more than one class
# (7,443 of 46,837 in the real.json that timm ships = 15.9%).
PAPER_REAL_MULTILABEL = 0.159


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU between every box of ``a`` [N, 4] and ``b`` [M, 4], boxes as (x1, y1, x2, y2) edges; shape [N, M]."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def crop_iou_stats(boxes_per_image: Sequence[Sequence[Sequence[float]]], image_sizes: Sequence[tuple[int, int]],
                   n_crops: int = 100, seed: int = 0, scale: tuple[float, float] = (0.08, 1.0),
                   ratio: tuple[float, float] = (3 / 4, 4 / 3), n_points: int = 101) -> dict:
    """Fig. 2 statistics: max IoU of random crops with an image's GT boxes, over all images that have boxes.

    ``boxes_per_image[i]`` holds image i's boxes as (x1, y1, x2, y2) pixels (x along the width);
    ``image_sizes[i]`` is its (width, height), as PIL's ``Image.size``. Images without boxes are skipped and
    counted. Crops come from ``torchvision.transforms.RandomResizedCrop.get_params`` under ``seed`` (the global
    torch RNG is forked, so the caller's RNG state is untouched). Returns the no-overlap and IoU > 0.5 fractions
    and the CDF (fraction of crops with max IoU <= t) at ``n_points`` thresholds t in [0, 1].
    """
    import torch
    from torchvision.transforms import RandomResizedCrop

    if len(boxes_per_image) != len(image_sizes):
        raise ValueError(f"got boxes for {len(boxes_per_image)} images but sizes for {len(image_sizes)}.")
    max_ious: list[np.ndarray] = []
    skipped = 0
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for boxes, (width, height) in zip(boxes_per_image, image_sizes):
            if len(boxes) == 0:
                skipped += 1
                continue
            dummy = torch.empty(1, int(height), int(width))  # get_params only reads the size
            crops = np.empty((n_crops, 4))
            for k in range(n_crops):
                top, left, h, w = RandomResizedCrop.get_params(dummy, list(scale), list(ratio))
                crops[k] = (left, top, left + w, top + h)
            max_ious.append(box_iou(crops, np.asarray(boxes, np.float64)).max(axis=1))
    ious = np.concatenate(max_ious) if max_ious else np.zeros(0)
    thresholds = np.linspace(0.0, 1.0, n_points)
    sorted_ious = np.sort(ious)
    cdf = np.searchsorted(sorted_ious, thresholds, side="right") / max(len(ious), 1)
    return {
        "n_images": len(max_ious),
        "n_images_without_boxes": skipped,
        "n_crops_per_image": n_crops,
        "seed": seed,
        "no_overlap": float(np.mean(ious <= 0.0)) if len(ious) else float("nan"),
        "iou_gt_0.5": float(np.mean(ious > 0.5)) if len(ious) else float("nan"),
        "mean_max_iou": float(ious.mean()) if len(ious) else float("nan"),
        "cdf_iou": [round(float(t), 4) for t in thresholds],
        "cdf_fraction": [round(float(c), 6) for c in cdf],
    }


def multilabel_fraction(label_sets: Iterable[Sequence[int]]) -> dict:
    """ReaL-style multi-label statistics: among scored (non-empty) sets, the fraction with more than one class."""
    sets = [set(s) for s in label_sets]
    scored = [s for s in sets if s]
    multi = sum(len(s) > 1 for s in scored)
    return {"n_images": len(sets), "n_scored": len(scored), "n_empty": len(sets) - len(scored),
            "n_multi": multi, "multi_fraction": multi / len(scored) if scored else float("nan")}
