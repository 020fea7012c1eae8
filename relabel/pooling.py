"""LabelPooling: the soft target of a random crop, pooled from a top-k label map on any device (no dense map).

Paper §3.2: RoIAlign the label map over the crop box, then softmax over all classes. Classes that are not
among a location's stored top-k count as logit 0 there (the official loader fills a dense zero map), so
they keep some probability mass after the softmax.

Formulation (why no dense ``[B, C, h, w]`` map is built anywhere): RoIAlign is linear in the map and,
for one box, its bilinear sampling grid is a product of a y-grid and an x-grid, so the pooled value of
every class is ``sum_{r, y, x} Wy[y] * Wx[x] * score[r, y, x] * [index[r, y, x] == class]``. We compute
the two 1-D weight vectors of each box exactly as torchvision's kernel samples (adaptive sampling ratio,
its border rules), multiply them onto the ``k·h·w`` stored scores and ``scatter_add`` those into ``[B, C]``.
That is exact whatever classes each location stores (pooling the k rank planes would be wrong: rank r
holds different classes at different locations) and costs O(B·k·h·w) instead of O(B·C·h·w).

Where to run it: everything here is device-agnostic. Measured on one H100 (ResNet-50, batch 256, bf16,
64.5 ms per step; ``bench/bench_pooling.py``): all on the GPU costs ~1.0 ms (launch-bound: ~80 tiny
kernels); with :func:`crop_weights` made in the DataLoader workers ~0.2 ms; with the whole
:func:`relabel_target` made in the workers (~2-4 µs per crop on one CPU core, read included) the step
only copies the [B, C] target (0.03 ms, 0.05%). The official loader's dense host-side map costs ~60 ms.

Two box modes:

* ``official=False`` (ours): the box follows ``relabel.transforms`` (x along width, y along height) and
  grid cell centres sit at ``(c + 0.5) / w`` — torchvision ``roi_align(boxes * [w, h, w, h], aligned=True)``.
* ``official=True``: reproduces naver-ai/relabel_imagenet exactly — boxes ``(top, left, bottom, right)
  * map_width - 0.5`` passed as torchvision's ``(x1, y1, x2, y2)`` with ``aligned=False`` — i.e. the
  crop's vertical extent is pooled along the map's WIDTH axis (the transposed box, see docs/references.md),
  and RoIs are widened to at least one cell.
"""
from __future__ import annotations

import torch
import torch.nn.functional as nnf
from torchvision.ops import roi_align

__all__ = [
    "VARIANTS",
    "crop_weights",
    "label_pool",
    "global_pool",
    "relabel_target",
    "mix_onehot",
    "dense_label_pool",
]

# Table 2 rows (+ the 0.5·ReLabel + 0.5·one-hot mix).
VARIANTS = ("localized_multi", "localized_single", "global_multi", "global_single", "mix")


def _axis_weights(lo: torch.Tensor, hi: torch.Tensor, n: int, out: int, min_one: bool) -> torch.Tensor:
    """RoIAlign's sampling along one axis as weights ``[B, out, n]`` over the ``n`` grid cells.

    ``lo``/``hi`` are RoI edges in grid units after any offset. Mirrors torchvision's kernel: adaptive
    sampling ratio ceil(bin), sample points at (i + 0.5) · bin / grid, samples outside [-1, n] count zero,
    coordinates clamped to [0, n - 1] before linear interpolation; each bin is the mean of its samples.
    """
    size = hi - lo
    if min_one:  # aligned=False widens degenerate RoIs to one cell
        size = size.clamp(min=1.0)
    bin_size = size / out
    grid = torch.ceil(bin_size).clamp(min=0)  # samples per bin along this axis
    # Boxes are clamped to [0, 1], so a bin never needs more than ceil(n / out) samples (+1 for float
    # rounding); a static bound avoids a device→host sync per step.
    n_max = -(-n // out) + 1
    it = torch.arange(n_max, device=lo.device, dtype=lo.dtype)
    pt = torch.arange(out, device=lo.device, dtype=lo.dtype)
    g = grid.clamp(min=1)[:, None, None]
    # Same operation order as torchvision's kernel, so sample points agree with it in float32.
    t = lo[:, None, None] + pt[None, :, None] * bin_size[:, None, None] + (it + 0.5) * bin_size[:, None, None] / g
    keep = (it[None, None, :] < grid[:, None, None]) & (t >= -1.0) & (t <= n)
    t = t.clamp(min=0.0)
    low = t.floor().clamp(max=n - 1)
    frac = torch.where(low >= n - 1, torch.zeros_like(t), t - low)
    high = (low + 1).clamp(max=n - 1)
    scale = keep.to(t.dtype) / g
    w = torch.zeros(lo.shape[0], out, n, device=lo.device, dtype=lo.dtype)
    w.scatter_add_(2, low.long(), (1.0 - frac) * scale)
    w.scatter_add_(2, high.long(), frac * scale)
    return w


def crop_weights(boxes: torch.Tensor, grid: tuple[int, int], output_size: int = 1, flips: torch.Tensor | None = None,
                 official: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Separable RoIAlign weights of each crop: ``wy [B, S, h]`` over map rows, ``wx [B, S, w]`` over columns.

    ``boxes [B, 4]`` are ``(x1, y1, x2, y2)`` in [0, 1] (relabel.transforms convention; values outside
    are clamped, a crop never leaves the image). ``flips [B]``
    mirrors the S output columns of flipped crops (the crop image was mirrored after cropping); with S = 1
    it changes nothing, which is why the official 1×1 pooling may ignore it.
    """
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"boxes must have shape [B, 4] (x1, y1, x2, y2), got {tuple(boxes.shape)}.")
    h, w = grid
    b = boxes.float().clamp(0.0, 1.0)
    if official:
        # Official: (top, left, bottom, right) * map.size(3) - 0.5 read by roi_align as (x1, y1, x2, y2),
        # aligned=False: the crop's rows are sampled along the map's width axis and its columns along height.
        s = float(w)
        wx = _axis_weights(b[:, 1] * s - 0.5, b[:, 3] * s - 0.5, w, output_size, min_one=True)
        wy = _axis_weights(b[:, 0] * s - 0.5, b[:, 2] * s - 0.5, h, output_size, min_one=True)
    else:
        # aligned=True: a box edge at u in [0, 1] is at u * n - 0.5 in cell-centre coordinates.
        wx = _axis_weights(b[:, 0] * w - 0.5, b[:, 2] * w - 0.5, w, output_size, min_one=False)
        wy = _axis_weights(b[:, 1] * h - 0.5, b[:, 3] * h - 0.5, h, output_size, min_one=False)
    if flips is not None and output_size > 1:
        f = flips.to(device=wx.device, dtype=torch.bool)[:, None, None]
        wx = torch.where(f, wx.flip(1), wx)
    return wy, wx


def _check(scores: torch.Tensor, indices: torch.Tensor, boxes: torch.Tensor | None = None) -> None:
    if scores.ndim != 4 or scores.shape != indices.shape:
        raise ValueError(
            f"scores and indices must both be [B, k, h, w]; got {tuple(scores.shape)} and {tuple(indices.shape)}."
        )
    if boxes is not None and (boxes.ndim != 2 or boxes.shape[1] != 4):
        raise ValueError(f"boxes must have shape [B, 4] (x1, y1, x2, y2), got {tuple(boxes.shape)}.")
    if boxes is not None and boxes.shape[0] != scores.shape[0]:
        raise ValueError(f"got {boxes.shape[0]} boxes for {scores.shape[0]} label maps; pass one box per crop.")


def label_pool(scores: torch.Tensor, indices: torch.Tensor, boxes: torch.Tensor | None, num_classes: int, *,
               flips: torch.Tensor | None = None, output_size: int = 1, official: bool = False,
               weights: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """Pooled logits of each crop: ``[B, C]`` for ``output_size=1`` else ``[B, C, S, S]``; non-stored classes 0.

    ``scores [B, k, h, w]`` (float) and ``indices [B, k, h, w]`` (any int dtype) are the top-k label maps;
    ``boxes [B, 4]`` and ``flips [B]`` come from ``relabel.transforms``. ``weights`` = ``crop_weights(...)``
    computed beforehand (e.g. in DataLoader workers, where the boxes are) replaces ``boxes``/``flips``/
    ``official``/``output_size``: on a GPU that leaves 4 small kernels instead of ~80 launch-bound ones.
    """
    _check(scores, indices, boxes)
    bsz, k, h, w = scores.shape
    if weights is None:
        if boxes is None:
            raise ValueError("label_pool needs the crop boxes [B, 4] (or their crop_weights).")
        weights = crop_weights(boxes.to(scores.device), (h, w), output_size, flips, official)
    wy, wx = (t.to(scores.device, non_blocking=True) for t in weights)
    output_size = wy.shape[1]
    s = scores.float().reshape(bsz, 1, k, h * w)
    idx = indices.long().reshape(bsz, -1)
    if output_size == 1:
        wmap = (wy[:, 0, :, None] * wx[:, 0, None, :]).reshape(bsz, 1, h * w)
        out = torch.zeros(bsz, num_classes, device=scores.device, dtype=torch.float32)
        return out.scatter_add_(1, idx, (s[:, 0] * wmap).reshape(bsz, -1))
    n_out = output_size * output_size
    wmap = torch.einsum("bph,bqw->bpqhw", wy, wx).reshape(bsz, n_out, 1, h * w)
    contrib = (s * wmap).reshape(bsz, n_out, -1)
    out = torch.zeros(bsz, n_out, num_classes, device=scores.device, dtype=torch.float32)
    out.scatter_add_(2, idx[:, None, :].expand(-1, n_out, -1), contrib)
    return out.permute(0, 2, 1).reshape(bsz, num_classes, output_size, output_size)


def global_pool(scores: torch.Tensor, indices: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Global mean of the label map per class ``[B, C]`` (Table 2 'global'): the label of the whole image."""
    _check(scores, indices)
    bsz, k, h, w = scores.shape
    out = torch.zeros(bsz, num_classes, device=scores.device, dtype=torch.float32)
    return out.scatter_add_(1, indices.long().reshape(bsz, -1), scores.float().reshape(bsz, -1) / (h * w))


def _present(indices: torch.Tensor, weight: torch.Tensor | None, num_classes: int) -> torch.Tensor:
    """Which classes received pooling weight from at least one stored entry ``[B, C]`` (bool)."""
    bsz = indices.shape[0]
    src = torch.ones(indices.shape, device=indices.device) if weight is None else weight.expand(indices.shape)
    hit = torch.zeros(bsz, num_classes, device=indices.device)
    return hit.scatter_add_(1, indices.long().reshape(bsz, -1), (src > 0).float().reshape(bsz, -1)) > 0


def _onehot_argmax(logits: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    # Argmax only over classes actually stored in the pooled region: an absent class sits at the filler
    # logit 0 and must not win when every stored logit is negative (Table 2 'single': argmax after pooling).
    masked = logits.masked_fill(~present, float("-inf"))
    return nnf.one_hot(masked.argmax(1), logits.shape[1]).float()


def mix_onehot(target: torch.Tensor, labels: torch.Tensor, weight: float = 0.5) -> torch.Tensor:
    """``(1 - weight) · target + weight · one_hot(labels)``: the ReLabel/original-label mix."""
    return (1.0 - weight) * target + weight * nnf.one_hot(labels.long(), target.shape[1]).to(target)


def relabel_target(scores: torch.Tensor, indices: torch.Tensor, boxes: torch.Tensor | None, num_classes: int, *,
                   variant: str = "localized_multi", flips: torch.Tensor | None = None,
                   labels: torch.Tensor | None = None, official: bool = False,
                   weights: tuple[torch.Tensor, torch.Tensor] | None = None) -> torch.Tensor:
    """The training target ``[B, C]`` (rows sum to 1) of each crop for one of :data:`VARIANTS`.

    localized_multi: softmax of the RoIAligned logits (ReLabel). localized_single: one-hot argmax after
    pooling. global_multi / global_single: the same from the whole-map mean (box ignored). mix:
    0.5 · localized_multi + 0.5 · one-hot of ``labels`` (the original ImageNet label). ``weights``: see
    :func:`label_pool`. Cheap enough to run in DataLoader workers (~2 µs per crop on one CPU core).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown LabelPooling variant {variant!r}; choose one of {', '.join(VARIANTS)}.")
    if variant.startswith("global"):
        logits = global_pool(scores, indices, num_classes)
        if variant == "global_multi":
            return torch.softmax(logits, 1)
        return _onehot_argmax(logits, _present(indices, None, num_classes))
    if boxes is None and weights is None:
        raise ValueError(f"variant {variant!r} pools the crop box; pass boxes [B, 4] from relabel.transforms.")
    if weights is None:
        weights = crop_weights(boxes.to(scores.device), scores.shape[-2:], 1, flips, official)
    logits = label_pool(scores, indices, boxes, num_classes, weights=weights)
    if variant == "localized_single":
        wy, wx = (t.to(scores.device) for t in weights)
        wmap = (wy[:, 0, :, None] * wx[:, 0, None, :])[:, None]
        return _onehot_argmax(logits, _present(indices, wmap, num_classes))
    target = torch.softmax(logits, 1)
    if variant == "mix":
        if labels is None:
            raise ValueError("variant 'mix' mixes with the original label; pass labels [B].")
        target = mix_onehot(target, labels.to(target.device), 0.5)
    return target


def dense_label_pool(scores: torch.Tensor, indices: torch.Tensor, boxes: torch.Tensor, num_classes: int, *,
                     output_size: int = 1, official: bool = False) -> torch.Tensor:
    """Reference/baseline: the official way — scatter into a dense ``[B, C, h, w]`` map, then torchvision roi_align.

    Same result as :func:`label_pool` (without flip handling) at O(B·C·h·w) memory; kept for tests and
    for the benchmark's comparison, not for training.
    """
    _check(scores, indices, boxes)
    bsz, k, h, w = scores.shape
    dense = torch.zeros(bsz, num_classes, h, w, device=scores.device, dtype=torch.float32)
    dense.scatter_(1, indices.long(), scores.float())
    b = boxes.to(scores.device).float().clamp(0.0, 1.0)
    if official:
        rois = b[:, [1, 0, 3, 2]] * w - 0.5  # (top, left, bottom, right) * size(3) - 0.5, read as (x1, y1, x2, y2)
    else:
        rois = b * torch.tensor([w, h, w, h], device=b.device, dtype=b.dtype)
    rois = torch.cat([torch.arange(bsz, device=b.device, dtype=b.dtype)[:, None], rois], 1)
    out = roi_align(dense, rois, output_size=(output_size, output_size), spatial_scale=1.0, sampling_ratio=-1,
                    aligned=not official)
    return out[:, :, 0, 0] if output_size == 1 else out
