"""Table 3's first column: ImageNet val top-1/top-5, and the val logits that ReaL, Shankar and Vasudevan re-score.

Val is predicted once per model and context (`val_logits`); the multi-label evaluators read the same logits
against their label sets, FGSM and on-the-fly ImageNet-C start from the same images (`val_samples`).
"""
from __future__ import annotations

import torch

from relabel.metrics import predict, topk_accuracy
from relabel.evaluators.base import (EvalContext, EvalError, EvalResult, FlatValLayout, PathSet, DatasetMissing,
                                     class_folder_samples, hits_entry)
from relabel.evaluators.unit import Column, DataCheck, Unit


def val_samples(ctx: EvalContext) -> tuple[list, list[int]]:
    """(paths, labels) of ImageNet val, label = index of the class folder's name in the class list."""
    key = ("val-samples", str(ctx.roots.val))
    if key not in ctx.cache:
        root = ctx.require(ctx.roots.val, "ImageNet val", "val")
        samples = class_folder_samples(root, ctx.roots.classes, "ImageNet val")
        ctx.cache[key] = ([p for p, _ in samples], [y for _, y in samples])
    return ctx.cache[key]


def val_logits(ctx: EvalContext):
    """(paths, labels, logits) of ImageNet val under the context's protocol, computed once per context."""
    key = ("val", str(ctx.roots.val), id(ctx.model), ctx.input_size, ctx.crop_ratio)
    if key not in ctx.cache:
        paths, labels = val_samples(ctx)
        logits = predict(ctx.model, PathSet(paths, ctx.transform()), ctx.batch_size, ctx.workers, ctx.device,
                         desc="val", progress=ctx.progress)
        ctx.cache[key] = (paths, labels, logits)
    return ctx.cache[key]


def top1(logits) -> torch.Tensor:
    """The top-1 prediction as topk_accuracy ranks it (ties broken as topk does, which argmax may not)."""
    return logits.topk(1, dim=1).indices[:, 0]


def top1_hits(logits, labels) -> torch.Tensor:
    return top1(logits) == torch.as_tensor(labels)


def evaluate_val(ctx: EvalContext) -> EvalResult:
    paths, labels, logits = val_logits(ctx)
    metrics = topk_accuracy(logits, labels)
    return EvalResult(metrics, ctx.dataset("imagenet-val", "val", len(paths), ctx.roots.val), ctx.base_params(),
                      {"top1": hits_entry(top1_hits(logits, labels), paths, ctx.roots.val, metrics["top1"])})


def check_val(roots) -> list:
    """The val image paths, or the one-sentence error of a missing or malformed val folder (the val reader's own
    rule for class folders, so what passes here reads later). `check_data` calls it once, before the units'
    checks, when any chosen unit reads val."""
    val = DataCheck(roots, None).need(roots.val, "ImageNet val", "val")
    try:
        return [p for p, _ in class_folder_samples(val, roots.classes, "ImageNet val")]
    except FlatValLayout:  # its sentence names the one command that arranges it, not where to point
        raise
    except EvalError as e:
        raise DatasetMissing(f"{str(e).rstrip('.')}; {roots.fix_hint()}.") from None


def _check(name: str, chk: DataCheck) -> None:
    """Val itself is checked by `check_val` (every unit that reads val shares it)."""


UNIT = Unit(
    suite="val", section="eval_real", evaluators={"val": evaluate_val},
    layout_key="val", layout="<val>/<class>/<image> (ImageNet: one folder per wnid; mini: digit0..digit9)",
    check=_check, reads_val=lambda roots: True,
    full_folder="val/", full_tree=("val/<wnid>/ILSVRC2012_val_*.JPEG",),
    mini="<world>/val/<class>/ (relabel.data.world: the scenes' main object is the label)",
    columns=(Column("table3", "val", "ImageNet val", "val"), Column("tableA1", "val", "ImageNet", "val")),
    headline={"val": (("top1", "top5"), "top-1 / top-5")},
    mini_test_images={"val": 20000},
)
