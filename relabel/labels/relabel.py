"""'relabel': LabelPooling of a top-k label-map store over each crop (paper §3.2) — ReLabel's rows of Tables 2-7,
Fig. 4 and Table 10's pooled rows.

`TrainConfig.relabel_variant` picks a pooling rule, each an entry of `POOLING_RULES` registered with
`@register_pooled_target(name)`: Table 2's four rows (localized/global × multi/single labels), the 0.5·ReLabel +
0.5·one-hot mix (Table 6's text) and, registered by multilabel_coco/targets.py, Table 10's multi-label BCE rules.
`TrainConfig.official_pooling` pools the transposed box of the official code (relabel.pooling). The targets are
computed in the loader workers (LabelPoolingCollate), so the training device only copies a [B, C] tensor.
"""
from __future__ import annotations

from typing import Callable

from relabel.labels.base import LabelSource, register_label_source
from relabel.loader import collate_train
from relabel.pooling import VARIANTS, relabel_target

# name -> fn(scores, indices, boxes, num_classes, *, flips, labels, official) -> [B, C]; a config selects one by
# name (`relabel_variant`), so its recipe hash names the rule.
POOLING_RULES: dict[str, Callable] = {}


def register_pooled_target(name: str):
    """Decorator: makes `fn` the LabelPooling target of `relabel_variant=name` (computed in loader workers).
    `fn(scores, indices, boxes, num_classes, *, flips, labels)`; it may also take `official`."""
    def deco(fn):
        POOLING_RULES[name] = fn
        return fn
    return deco


def _table2_rule(variant: str):
    def rule(scores, indices, boxes, num_classes, *, flips=None, labels=None, official=False):
        return relabel_target(scores, indices, boxes, num_classes, variant=variant, flips=flips, labels=labels,
                              official=official)
    rule.__name__ = rule.__qualname__ = f"relabel_{variant}"
    rule.__doc__ = f"relabel.pooling.relabel_target(variant='{variant}')"
    return rule


for _v in VARIANTS:  # Table 2's rows and the one-hot mix (relabel.pooling holds their arithmetic)
    register_pooled_target(_v)(_table2_rule(_v))


class LabelPoolingCollate:
    """Batches samples and computes their LabelPooling targets inside the DataLoader worker.

    Reading the top-k maps of the batch and pooling them over the crop boxes on the host, in the workers, keeps
    the training device free: measured on one H100, this costs 0.05% of a ResNet-50 step, against 1.6% for the
    same pooling launched on the GPU inside the step (many tiny kernels) and ~93% for the official dense loader
    (bench/bench_pooling.py).
    """

    def __init__(self, store, num_classes: int, variant: str, official: bool = False, transform=None,
                 finish: bool = True):
        if variant not in POOLING_RULES:
            raise ValueError(f"unknown LabelPooling variant {variant!r}; choose one of {', '.join(POOLING_RULES)}.")
        self.store, self.num_classes, self.variant, self.official = store, num_classes, variant, official
        self.rule = POOLING_RULES[variant]
        self.official_kw = {"official": official} if variant in VARIANTS else {}  # section rules take no box mode
        self.transform = transform  # the items' transform, whose batched stages run here (collate_train) ...
        self.finish = finish  # ... unless False: the trainer finishes the 8-bit batch on the training device

    def __call__(self, samples):
        x, boxes, flips, labels, rows = collate_train(samples, self.transform, self.finish)
        scores, indices = self.store.read_batch(rows.numpy())
        target = self.rule(scores, indices, boxes, self.num_classes, flips=flips, labels=labels, **self.official_kw)
        return x, boxes, flips, labels, rows, target


@register_label_source("relabel")
class ReLabel(LabelSource):
    needs = ("store",)
    store_kind = "a label-map store (relabel.store.LabelMapStore)"
    losses = ("ce", "bce")

    @property
    def tag(self) -> str:
        return f"relabel/{self.cfg.relabel_variant}"

    @classmethod
    def describe(cls, train: dict) -> str:
        variant = train.get("relabel_variant", "localized_multi")
        return "ReLabel maps" + (f", {variant}" if variant != "localized_multi" else "")

    def collate(self, transform, finish: bool):
        return LabelPoolingCollate(self.store, self.cfg.num_classes, self.cfg.relabel_variant,
                                   self.cfg.official_pooling, transform, finish=finish)

    def target(self, x, labels, extra, device):
        return extra[0].to(device, non_blocking=True)
