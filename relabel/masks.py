"""Binary masks → label-map grids: exact area-average resampling (oracle label maps of COCO and the mini world)."""
from __future__ import annotations

import numpy as np


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """[n_out, n_in] weights of exact area-average resampling along one axis: cell i covers input pixels
    [i·n_in/n_out, (i+1)·n_in/n_out), each pixel counted by the length of its overlap, rows summing to 1."""
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    px = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, px + 1) - np.maximum(lo, px), 0.0, None)
    return overlap / (n_in / n_out)


def resize_masks(masks: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """[C, H, W] binary masks → [C, h, w] float32 coverage fractions (exact area average)."""
    _, H, W = masks.shape
    wy, wx = area_weights(H, grid[0]), area_weights(W, grid[1])
    return np.einsum("ih,chw,jw->cij", wy, masks.astype(np.float64), wx).astype(np.float32)
