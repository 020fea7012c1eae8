"""Table 7, part 2: ImageNet-C, from pre-rendered folders or generated on the fly from val with `imagecorruptions`.

Pre-rendered: `<root>/<corruption>/<severity>/<class>/<image>` (the release stores 224² images after Resize 256 +
CenterCrop 224). On the fly: each val image goes through the eval Resize + CenterCrop, is corrupted as uint8
pixels (as the release was made), then normalised. The noise of image i at (corruption, severity) is seeded by
(c_seed, corruption, severity, i), so a run is reproducible and every model sees the same corrupted pixels. At mini
scale a seeded subset of val (`c_images`) keeps 75 cells to minutes; the record says the source and subset. An mCE
over fewer than the 15 corruptions or 5 severities is another number than the benchmark's: the record
(`c_mce_scope`, `c_mce_complete`) and the CLIs' print say so ("mCE over 3 of 15 corruptions, not the benchmark's").

`imagecorruptions` 1.1.2 predates numpy 2 and scikit-image 0.26 (glass_blur and fog fail there): `load()` gives
its module a numpy that still has `np.float_` and a `gaussian` that maps `multichannel=` to `channel_axis=`,
and a `random_noise` seeded from numpy's global RNG like every other corruption (impulse_noise was not seedable),
without touching numpy or scikit-image for anyone else.
"""
from __future__ import annotations

import functools
import types
import warnings
import zlib

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T
from relabel.progress import bar as progress_bar

from relabel.dist import batch_shard, is_main
from relabel.metrics import ALEXNET_ERR, SEVERITIES, corruption_summary, predict, topk_accuracy
from relabel.evaluators.base import EvalContext, EvalError, EvalResult, PathSet, class_folder_samples, hits_entry
from relabel.evaluators.classification import val_samples
from relabel.loader import IMAGENET_MEAN, IMAGENET_STD, _mix, load_rgb

MIN_SIZE = 32  # imagecorruptions refuses smaller images


@functools.lru_cache(maxsize=1)
def load() -> types.ModuleType:
    """`imagecorruptions.corruptions`, patched for numpy 2 / scikit-image ≥ 0.19 (see the module docstring)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its `pkg_resources` import warns on every start
        import imagecorruptions.corruptions as C
    import skimage
    import skimage.util
    from skimage.filters import gaussian as _gaussian

    def gaussian(image, *args, multichannel=None, **kw):
        if multichannel is not None and "channel_axis" not in kw:
            kw["channel_axis"] = -1 if multichannel else None
        return _gaussian(image, *args, **kw)

    def random_noise(image, *args, **kw):  # skimage ≥ 0.19 draws from its own unseeded Generator
        kw.setdefault("rng", int(np.random.randint(0, 2**31 - 1)))
        return skimage.util.random_noise(image, *args, **kw)

    C.np = _proxy("numpy_compat", np, float_=np.float64)
    C.sk = _proxy("skimage_compat", skimage, util=_proxy("skimage_util_compat", skimage.util,
                                                          random_noise=random_noise))
    C.gaussian = gaussian
    return C


def _proxy(name: str, module: types.ModuleType, **overrides) -> types.ModuleType:
    """A module that is `module` except for `overrides` (the original module stays untouched)."""
    proxy = types.ModuleType(name)
    proxy.__getattr__ = lambda attr: getattr(module, attr)
    proxy.__dict__.update(overrides)
    return proxy


def corrupt(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """`image` (uint8 H×W×3) corrupted by `name` at `severity`, with the global numpy RNG seeded by `seed`
    (imagecorruptions draws from it) and restored afterwards."""
    fn = getattr(load(), name, None)
    if fn is None:
        raise EvalError(f"'{name}' is not an imagecorruptions corruption; use one of {', '.join(ALEXNET_ERR)}.")
    state = np.random.get_state()
    try:
        np.random.seed(seed % 2**32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(Image.fromarray(image), severity)  # as imagecorruptions.corrupt calls them
    finally:
        np.random.set_state(state)
    return np.uint8(np.clip(out, 0, 255))  # imagecorruptions.corrupt casts without the clip; values are in range


class CorruptedSet(Dataset):
    """(normalised corrupted image, index) of clean uint8 crops at one (corruption, severity)."""

    def __init__(self, crops: list[np.ndarray], name: str, severity: int, seed: int):
        self.crops, self.name, self.severity = crops, name, severity
        self.seed = _mix(seed, zlib.crc32(name.encode()), severity)
        self.to_tensor = T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int):
        return self.to_tensor(corrupt(self.crops[i], self.name, self.severity, _mix(self.seed, i))), i


class CleanSet(Dataset):
    """(normalised clean crop, index): the same pixels the corruptions start from."""

    def __init__(self, crops):
        self.crops = crops
        self.to_tensor = T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int):
        return self.to_tensor(self.crops[i]), i


def _subset(n_total: int, n: int | None, seed: int) -> list[int]:
    """The first n of a seed-`seed` permutation of range(n_total), in ascending order (all when n is None)."""
    if n is None or n >= n_total:
        return list(range(n_total))
    g = torch.Generator().manual_seed(_mix(seed, 0xC0))
    return sorted(torch.randperm(n_total, generator=g)[:n].tolist())


def mce_scope(corruptions, severities) -> dict:
    """What an mCE covers, for records and print: the benchmark's mCE averages all 15 corruptions at severities
    1-5 (Hendrycks & Dietterich); over a subset it is another number and says so ("mCE over 3 of 15 corruptions")."""
    n = len({c for c in corruptions if c in ALEXNET_ERR})
    sev = sorted(set(int(s) for s in severities))
    complete = n == len(ALEXNET_ERR) and sev == list(SEVERITIES)
    if complete:
        return {"c_mce_complete": True, "c_mce_scope": f"mCE over all {n} corruptions at severities 1-5 (the "
                                                       f"benchmark's)"}
    scope = f"mCE over {n} of {len(ALEXNET_ERR)} corruptions"
    if sev != list(SEVERITIES):
        scope += f" at severities {','.join(map(str, sev))} of 1-5"
    return {"c_mce_complete": False, "c_mce_scope": scope + ", not the benchmark's"}


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
