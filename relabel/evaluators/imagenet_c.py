"""Table 7: ImageNet-C — mean accuracy and mCE over 15 corruptions × 5 severities, pre-rendered or on the fly.

Pre-rendered: `<root>/<corruption>/<severity>/<class>/<image>` (the release stores 224² images after Resize 256 +
CenterCrop 224). On the fly (`relabel.evaluators.corruptions`): each val image goes through the eval Resize +
CenterCrop, is corrupted as uint8 pixels (as the release was made), then normalised; at mini scale a seeded subset
of val (`c_images`) keeps 75 cells to minutes; the record says the source and subset. An mCE over fewer than the
15 corruptions or 5 severities is another number than the benchmark's, and the record says so (`mce_scope`).
"""
from __future__ import annotations

import numpy as np
import torch
from torchvision import transforms as T

from relabel.data.readers import class_folders
from relabel.dist import batch_shard, is_main
from relabel.metrics import ALEXNET_ERR, CORRUPTIONS, SEVERITIES, corruption_summary, predict, topk_accuracy
from relabel.progress import bar as progress_bar
from relabel.evaluators.base import (EvalContext, EvalError, EvalResult, PathSet, class_folder_samples, has_image,
                                     hits_entry)
from relabel.evaluators.corruptions import MIN_SIZE, CleanSet, CorruptedSet, _subset, mce_scope
from relabel.evaluators.unit import Column, DataCheck, Unit
from relabel.evaluators.val import val_samples
from relabel.loader import IMAGENET_MEAN, IMAGENET_STD, load_rgb


def evaluate_imagenet_c(ctx: EvalContext) -> EvalResult:
    o = ctx.options
    unknown = [c for c in o.c_corruptions if c not in ALEXNET_ERR]
    if unknown:
        raise EvalError(f"unknown ImageNet-C corruption(s) {unknown}; use names from {', '.join(ALEXNET_ERR)}.")
    rendered = ctx.roots.imagenet_c
    n_images = (ctx.roots.imagenet_c_images if rendered is None else None) if o.c_images == "default" \
        else o.c_images
    acc, sizes, hits, hit_paths = {}, set(), None, None  # hits: per image, its corrupted copies classified right
    cells = [(c, s) for c in o.c_corruptions for s in o.c_severities]
    bar = progress_bar(iterable=cells, desc="imagenet-c", disable=not ctx.progress or not is_main(), leave=False)
    if rendered is None:
        if ctx.input_size < MIN_SIZE:
            raise EvalError(f"ImageNet-C on the fly needs an input size of at least {MIN_SIZE} px "
                            f"(imagecorruptions' limit), got {ctx.input_size}.")
        paths, labels = val_samples(ctx)
        keep = _subset(len(paths), n_images, o.c_seed)
        crop = T.Compose(ctx.transform(normalize=False).transforms[:-1])  # Resize + CenterCrop, no ToTensor
        # under torchrun a rank decodes only the crops of its batches (predict shards by the same batch size)
        crops = [None] * len(keep)
        for j in batch_shard(len(keep), ctx.batch_size).indices():
            crops[j] = np.array(crop(load_rgb(paths[keep[j]])), dtype=np.uint8)
        labels = [labels[i] for i in keep]
        clean = predict(ctx.model, CleanSet(crops), ctx.batch_size, 0, ctx.device, progress=False)
        extra = {"clean_top1": topk_accuracy(clean, labels, ks=(1,))["top1"]}
        for c, s in bar:
            bar.set_postfix_str(f"{c} s{s}", refresh=False)
            logits = predict(ctx.model, CorruptedSet(crops, c, s, o.c_seed), ctx.batch_size, ctx.workers,
                             ctx.device, progress=False)
            acc.setdefault(c, {})[str(s)] = topk_accuracy(logits, labels, ks=(1,))["top1"]
            cell_hits = (logits.topk(1, dim=1).indices[:, 0] == torch.as_tensor(labels)).to(torch.int64)
            hits = cell_hits if hits is None else hits + cell_hits
        sizes.add(len(crops))
        hit_paths = [paths[i] for i in keep]
        source = {"c_source": "generated on the fly from val (imagecorruptions)", "c_images": len(crops),
                  "c_subset": (f"first {len(crops)} of a seed-{o.c_seed} permutation of val"
                               if len(crops) < len(paths) else "all of val"), "c_seed": o.c_seed}
        root = ctx.roots.val
    else:
        root = ctx.require(rendered, "pre-rendered ImageNet-C", "imagenet-c")
        tf = T.Compose([T.Resize(ctx.input_size), T.CenterCrop(ctx.input_size), T.ToTensor(),
                        T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
        for c, s in bar:
            bar.set_postfix_str(f"{c} s{s}", refresh=False)
            samples = class_folder_samples(ctx.require(root / c / str(s), f"ImageNet-C {c}/{s}", "imagenet-c"),
                                           ctx.roots.classes, f"ImageNet-C {c}/{s}", "imagenet-c")
            samples = [samples[i] for i in _subset(len(samples), n_images, o.c_seed)]
            logits = predict(ctx.model, PathSet([p for p, _ in samples], tf), ctx.batch_size, ctx.workers,
                             ctx.device, progress=False)
            acc.setdefault(c, {})[str(s)] = topk_accuracy(logits, [y for _, y in samples], ks=(1,))["top1"]
            sizes.add(len(samples))
        extra = {}
        source = {"c_source": "pre-rendered", "c_images": max(sizes), "c_seed": o.c_seed,
                  "c_subset": "all" if n_images is None else f"≤{n_images} per cell, seed {o.c_seed}"}
    summary = corruption_summary(acc)
    metrics = {"mean_acc": summary["mean_acc"], "mean_err": summary["mean_err"], **extra, "acc": acc,
               "ce": summary["ce"]}
    if "mce" in summary:
        metrics["mce"] = summary["mce"]
        metrics["mce_n_corruptions"] = len(summary["ce"])
    params = {**ctx.base_params(), **source, "c_corruptions": list(o.c_corruptions),
              "c_severities": list(o.c_severities), **mce_scope(o.c_corruptions, o.c_severities)}
    # the unit of test-set noise is the image, not the copy: its outcome is the fraction of its copies right
    outcomes = {} if hits is None else {
        "mean_acc": hits_entry(hits, hit_paths, ctx.roots.val, metrics["mean_acc"], den=len(cells))}
    return EvalResult(metrics, ctx.dataset("imagenet-c", "val", max(sizes) * len(cells), root,
                                           images_per_cell=max(sizes)), params, outcomes)


def check(name: str, chk: DataCheck) -> None:
    roots, o = chk.roots, chk.options
    bad = [c for c in o.c_corruptions if c not in CORRUPTIONS]
    if bad or not set(o.c_severities) <= set(SEVERITIES) or not o.c_corruptions:
        raise EvalError(f"ImageNet-C corruptions must come from {', '.join(CORRUPTIONS)} and severities "
                        f"from 1-5; got {bad or list(o.c_corruptions)} / {list(o.c_severities)}.")
    if roots.imagenet_c is None:
        return  # generated on the fly from val, which check_val has looked at
    known = set(roots.classes)
    root = chk.need(roots.imagenet_c, "pre-rendered ImageNet-C", "imagenet-c")
    for c in o.c_corruptions:
        for s in o.c_severities:
            cell = chk.need(root / c / str(s), f"ImageNet-C {c}/{s}", "imagenet-c")
            folders = class_folders(cell)
            if not any(has_image(f) for f in folders):
                raise chk.wrong(cell, f"ImageNet-C {c}/{s} folder", "imagenet-c",
                                "holds no images in <class>/ folders")
            stray = sorted(f.name for f in folders if f.name not in known)  # the evaluator refuses them
            if stray:
                raise chk.wrong(cell, f"ImageNet-C {c}/{s} folder", "imagenet-c",
                                f"has folders {stray[:3]} that are not in the class list")


UNIT = Unit(
    suite="c", section="robustness", evaluators={"imagenet-c": evaluate_imagenet_c},
    layout_key="imagenet-c", layout="<imagenet-c>/<corruption>/<severity 1-5>/<class>/<image>", check=check,
    reads_val=lambda roots: roots.imagenet_c is None,  # on the fly: corrupted val
    full_folder="imagenet-c/", full_tree=("imagenet-c/<corruption>/<1..5>/<wnid>/ (optional)",),
    mini="generated on the fly from <world>/val/ (a seeded subset of MINI_C_IMAGES images)",
    columns=(Column("table7", "imagenet_c", "ImageNet-C (mean accuracy)", "imagenet-c", "mean_acc"),),
    headline={"imagenet-c": (("mean_acc", "mce", "clean_top1"), "mean acc / mCE / clean")},
    mini_test_images={"imagenet-c": 1_000},  # images per corruption × severity (75 copies each)
)
