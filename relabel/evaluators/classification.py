"""Tables 3 and A1: one classification evaluator over ImageNet val, ImageNetV2 ×3, ReaL and Shankar et al.

They differ only in images and label sets: val and V2 are single-label top-1/top-5 (V2's label is int(folder));
ReaL and Shankar re-score the val logits against multi-label sets, so val is predicted once per model and shared.
"""
from __future__ import annotations

import torch

from relabel.data.readers import list_int_folders, read_real_labels, read_shankar, val_index
from relabel.metrics import predict, real_accuracy, shankar_accuracy, topk_accuracy
from relabel.evaluators.base import EvalContext, EvalError, EvalResult, PathSet, class_folder_samples, hits_entry


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


def v2_evaluator(variant: str):
    def evaluate_v2(ctx: EvalContext) -> EvalResult:
        root = ctx.require(ctx.roots.v2.get(variant), f"ImageNetV2 {variant}", "v2")
        samples = list_int_folders(root)  # label = int(folder): '10' is class 10, not the 3rd folder
        if not samples:
            raise EvalError(f"ImageNetV2 {variant} folder {root} holds no images.")
        bad = sorted({y for _, y in samples if not 0 <= y < ctx.num_classes})
        if bad:
            raise EvalError(f"ImageNetV2 {variant} folder {root} has class folders {bad[:3]} outside "
                            f"0..{ctx.num_classes - 1}; is it the right scale?")
        paths, labels = [p for p, _ in samples], [y for _, y in samples]
        logits = predict(ctx.model, PathSet(paths, ctx.transform()), ctx.batch_size, ctx.workers, ctx.device,
                         desc=f"v2-{variant}", progress=ctx.progress)
        metrics = topk_accuracy(logits, labels)
        return EvalResult(metrics, ctx.dataset(f"imagenetv2-{variant}", "test", len(samples), root),
                          ctx.base_params(),
                          {"top1": hits_entry(top1_hits(logits, labels), paths, root, metrics["top1"])})
    evaluate_v2.__doc__ = f"ImageNetV2 {variant}: top-1/top-5 with label = int(folder name)."
    return evaluate_v2


def evaluate_real(ctx: EvalContext) -> EvalResult:
    path = ctx.require(ctx.roots.real_json, "ImageNet-ReaL label", "real", is_file=True)
    paths, _, logits = val_logits(ctx)
    try:
        real = read_real_labels(path)
        metrics = real_accuracy(logits, paths, real)
    except ValueError as e:
        raise EvalError(f"ReaL labels {path}: {e}") from None
    pred = top1(logits).tolist()
    scored = [(p, y in real[val_index(p)]) for p, y in zip(paths, pred) if real[val_index(p)]]
    return EvalResult(metrics, ctx.dataset("imagenet-real", "val", metrics["n_scored"], ctx.roots.val,
                                           labels=str(path)), ctx.base_params(),
                      {"top1": hits_entry([h for _, h in scored], [p for p, _ in scored], ctx.roots.val,
                                          metrics["top1"])})


def evaluate_shankar(ctx: EvalContext) -> EvalResult:
    path = ctx.require(ctx.roots.shankar_json, "Shankar et al. label", "shankar", is_file=True)
    paths, labels, logits = val_logits(ctx)
    try:
        ann = read_shankar(path, list(ctx.roots.classes))
        metrics = shankar_accuracy(logits, paths, labels, ann)
    except ValueError as e:
        raise EvalError(f"Shankar et al. labels {path}: {e}") from None
    scored = [(p, y in ann.correct[i]) for p, y in zip(paths, logits.argmax(1).tolist())
              for i in (val_index(p),) if i in ann.correct and i not in ann.problematic]
    outcomes = {"top1": hits_entry([h for _, h in scored], [p for p, _ in scored], ctx.roots.val, metrics["top1"])}
    return EvalResult(metrics, ctx.dataset("shankar-multilabel", "val", metrics["n_scored"], ctx.roots.val,
                                           labels=str(path)),
                      {**ctx.base_params(), "shankar_variants": "top1=(a) correct, plain mean; "
                                                                "top1_unclear_classavg=(b) correct|unclear, class mean"},
                      outcomes)
