"""LabelPooling for multi-label BCE: how a label map pooled over a random crop becomes per-class targets in [0, 1].

ImageNet's LabelPooling ends in a softmax (one distribution per crop). Multi-label training uses per-class binary
cross-entropy, so each class needs its own probability that it is in the crop; the paper does not spell out that
step for Table 10, so these rules are ours (documented in the README). All three pool the same top-k store with
the same RoIAlign as ImageNet (relabel.pooling.label_pool, computed in the loader workers) and are registered
with the trainer as `relabel_variant` names:

* ``ml_fraction`` (oracle maps, the literal reading): the pooled mask coverage, i.e. the fraction of the crop the
  class covers. A crop inside an object gets 1; a crop holding a whole but small or thin object gets only its
  area share (a digit's strokes fill ~4% of a mini image), so presence is taught with small targets.
* ``ml_overlap`` (oracle maps, default): the overlap coefficient |crop ∩ mask| / min(|crop|, |mask|), from the
  pooled coverage p, the crop's area A (image = 1) and the class's whole-image coverage g (the map's mean):
  p·A / min(A, g). It is 1 when the crop lies inside the class's mask OR holds all of it, 0 when it misses the
  class, and the visible share of the object in between — "how much of the object is in this crop", independent
  of how thin the object is. Equal to ``ml_fraction`` whenever the class covers at least the crop's area.
* ``ml_sigmoid`` (machine maps): sigmoid of the pooled logits of a multi-label (sigmoid-trained) annotator, the
  per-class counterpart of ImageNet's softmax of pooled logits. Classes outside a location's top-k count as the
  image's lowest stored logit (confidently absent), not as logit 0 as in the softmax rule: sigmoid(0) = 0.5 would
  call them half present. With k = C (the mini store) nothing is outside the top-k.
"""
from __future__ import annotations

import torch

from relabel.pooling import crop_weights, global_pool, label_pool
from relabel.labels.relabel import register_pooled_target

RULES = ("ml_fraction", "ml_overlap", "ml_sigmoid")


def _pool(scores, indices, boxes, num_classes, flips):
    weights = crop_weights(boxes.to(scores.device), tuple(scores.shape[-2:]), 1, flips)
    return label_pool(scores, indices, None, num_classes, weights=weights), weights


@register_pooled_target("ml_fraction")
def fraction_target(scores: torch.Tensor, indices: torch.Tensor, boxes: torch.Tensor, num_classes: int, *,
                    flips=None, labels=None) -> torch.Tensor:
    """[B, C]: the fraction of each crop each class's mask covers (pooled coverage map, clipped to [0, 1])."""
    return _pool(scores, indices, boxes, num_classes, flips)[0].clamp(0.0, 1.0)


@register_pooled_target("ml_overlap")
def overlap_target(scores: torch.Tensor, indices: torch.Tensor, boxes: torch.Tensor, num_classes: int, *,
                   flips=None, labels=None) -> torch.Tensor:
    """[B, C]: |crop ∩ mask| / min(|crop|, |mask|) per class, from the pooled and the whole-image coverage."""
    pooled, _ = _pool(scores, indices, boxes, num_classes, flips)
    whole = global_pool(scores, indices, num_classes)  # fraction of the image each class covers
    b = boxes.to(pooled).clamp(0.0, 1.0)
    area = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[:, None]
    smaller = torch.minimum(area.expand_as(whole), whole)
    out = torch.where(smaller > 0, pooled * area / smaller.clamp(min=1e-12), torch.zeros_like(pooled))
    return out.clamp(0.0, 1.0)


@register_pooled_target("ml_sigmoid")
def sigmoid_target(scores: torch.Tensor, indices: torch.Tensor, boxes: torch.Tensor, num_classes: int, *,
                   flips=None, labels=None) -> torch.Tensor:
    """[B, C]: sigmoid of the RoIAligned logits; classes a location does not store count as the image's
    lowest stored logit there."""
    floor = scores.float().flatten(1).amin(1)[:, None]  # [B, 1]
    shifted = scores.float() - floor[:, :, None, None]  # ≥ 0; unstored entries now sit at 0 = the floor
    pooled, (wy, wx) = _pool(shifted, indices, boxes, num_classes, flips)
    wsum = (wy.sum(-1) * wx.sum(-1))[:, :1].to(pooled)  # RoIAlign weights of each crop (1 inside the image)
    return torch.sigmoid(pooled + floor * wsum)
