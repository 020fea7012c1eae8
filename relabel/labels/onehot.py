"""'onehot': the image's own label, optionally smoothed — Tables 2-7's original labels, Table 3's label smoothing.

Label smoothing (Table 3, ε = 0.1) is this source with `TrainConfig.label_smoothing = ε`; label cleaning (Table 3,
Beyer et al.) is this source on the cleaned subset of the training set (pretrain.config.RowSpec.clean): to the
trainer both are one-hot targets, so they are parameters of this entry, not entries of their own (a new `label`
value would change the recipe hash of every record made with them).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from relabel.labels.base import LabelSource, register_label_source


def onehot_target(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """One-hot with label smoothing ε spread uniformly over all classes (as torch's CE label_smoothing)."""
    t = F.one_hot(labels.long(), num_classes).float()
    return t * (1.0 - smoothing) + smoothing / num_classes


@register_label_source("onehot")
class OneHot(LabelSource):
    losses = ("ce", "bce")  # BCE on one-hot targets: one-vs-rest (a recipe may ask for it)

    @classmethod
    def describe(cls, train: dict) -> str:
        eps = train.get("label_smoothing")
        return "original labels" + (f", label smoothing {eps}" if eps else "")

    def target(self, x, labels, extra, device):
        return onehot_target(labels, self.cfg.num_classes, self.cfg.label_smoothing)
