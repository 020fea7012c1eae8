"""Table 7: ImageNet-A — natural adversarial images of 200 classes, scored with only those classes' logits.

A 1000-class model is evaluated on the 200-class subset by keeping `logits[:, indices]` and taking the argmax
among them (the benchmark's protocol); `top1_all_classes` is the unrestricted argmax, recorded beside it.
"""
from __future__ import annotations

import torch

from relabel.data.readers import read_imagenet_a
from relabel.metrics import predict, subset_accuracy
from relabel.evaluators.base import DatasetMissing, EvalContext, EvalError, EvalResult, PathSet, \
    class_folder_samples, hits_entry
from relabel.evaluators.unit import Column, DataCheck, Unit


def evaluate_imagenet_a(ctx: EvalContext) -> EvalResult:
    root = ctx.require(ctx.roots.imagenet_a, "ImageNet-A", "imagenet-a")
    try:
        samples, indices = read_imagenet_a(root, list(ctx.roots.classes))
    except ValueError as e:
        raise EvalError(str(e)) from None
    index_file = ctx.roots.imagenet_a_indices
    if index_file is not None and index_file.is_file():
        indices = [int(x) for x in index_file.read_text().split()]
    if not samples:
        raise EvalError(f"ImageNet-A folder {root} holds no images.")
    outside = sorted({y for _, y in samples} - set(indices))
    if outside or not all(0 <= i < ctx.num_classes for i in indices):
        raise EvalError(f"ImageNet-A index list {index_file} does not cover the folders' classes {outside[:3]} "
                        f"(or names classes outside 0..{ctx.num_classes - 1}); is it the right scale?")
    labels = [y for _, y in samples]
    logits = predict(ctx.model, PathSet([p for p, _ in samples], ctx.transform()), ctx.batch_size, ctx.workers,
                     ctx.device, desc="imagenet-a", progress=ctx.progress)
    idx = torch.as_tensor(list(indices))
    hits = idx[logits[:, idx].argmax(1)] == torch.as_tensor(labels)  # subset_accuracy's rule, per image
    metrics = {"top1": subset_accuracy(logits, labels, indices),
               "top1_all_classes": 100.0 * (logits.argmax(1) == torch.as_tensor(labels)).double().mean().item(),
               "n_subset_classes": len(indices)}
    return EvalResult(metrics, ctx.dataset("imagenet-a", "test", len(samples), root),
                      {**ctx.base_params(), "a_logit_mask": f"{len(indices)} subset classes"},
                      {"top1": hits_entry(hits, [p for p, _ in samples], root, metrics["top1"])})


def check(name: str, chk: DataCheck) -> None:
    roots = chk.roots
    root = chk.need(roots.imagenet_a, "ImageNet-A", "imagenet-a")
    try:
        class_folder_samples(root, roots.classes, "ImageNet-A", "imagenet-a")
    except EvalError as e:
        raise DatasetMissing(f"{str(e).rstrip('.')}; {roots.fix_hint()}.") from None


UNIT = Unit(
    suite="a", section="robustness", evaluators={"imagenet-a": evaluate_imagenet_a},
    layout_key="imagenet-a", layout="<imagenet-a>/<wnid>/<image> (200 wnid folders)", check=check,
    full_folder="imagenet-a/", full_tree=("imagenet-a/<wnid>/",),
    mini="<world>/imagenet_a/<class>/ + indices.txt (relabel.data.bench_splits.write_imagenet_a: scenes a fixed "
         "reference classifier gets wrong, on a subset of the classes)",
    columns=(Column("table7", "imagenet_a", "ImageNet-A", "imagenet-a", "top1"),),
    headline={"imagenet-a": (("top1",), "top-1 (subset logits)")},
    mini_test_images={"imagenet-a": 10_000},
)
