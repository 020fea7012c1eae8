"""'multihot': each sample's label is its length-C 0/1 vector — Table 10's baseline (COCO, per-class BCE) and the
mini multi-label annotator's training (multilabel_coco/)."""
from __future__ import annotations

from relabel.labels.base import LabelSource, register_label_source


@register_label_source("multihot")
class MultiHot(LabelSource):
    losses = ("bce", "ce")

    @classmethod
    def describe(cls, train: dict) -> str:
        return "multi-hot image labels"

    def target(self, x, labels, extra, device):
        return labels.float()
