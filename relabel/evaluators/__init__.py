"""The evaluator registry: a model + a `DataRoots` → metrics for every benchmark of Tables 3, A1 and 7.

    from relabel import evaluators as E
    roots = E.DataRoots.for_scale("mini")                      # or DataRoots.full("/data")
    res = E.evaluate("real", model, roots, input_size=48)      # EvalResult(metrics, dataset, params)
    all_ = E.evaluate_many(E.NAMES, model, roots, input_size=48)  # shares the val logits

Names (what records carry and results/tables.py reads): val, v2-top-images, v2-matched-frequency,
v2-threshold0.7, real, shankar (eval_real/); fgsm, imagenet-a, imagenet-c, bgc (robustness/). `SUITES` groups
them as the CLIs' `--suite` words. The model takes ImageNet-normalised images and outputs one logit per class of
`roots.classes`; anything that does not fit raises `EvalError` with a one-sentence fix. `check_data(names,
roots)` looks at every file a list of evaluators will read, in seconds, before a run starts.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

import torch
import torch.nn as nn

from relabel.data.readers import (IMAGE_EXTENSIONS, class_folders, read_in_to_in9, read_real_labels, read_shankar,
                                  val_index)
from relabel.dist import sync_module
from relabel.metrics import CORRUPTIONS, SEVERITIES
from relabel.evaluators.base import (DatasetMissing, EvalContext, EvalError, EvalOptions, EvalResult, FlatValLayout,
                                     check_classes, class_folder_samples, require)
from relabel.evaluators.classification import evaluate_real, evaluate_shankar, evaluate_val, v2_evaluator
from relabel.evaluators.corruptions import evaluate_imagenet_c
from relabel.evaluators.robust import evaluate_bgc, evaluate_fgsm, evaluate_imagenet_a
from relabel.evaluators.roots import LAYOUTS, V2_VARIANTS, DataRoots

__all__ = ["NAMES", "SUITES", "EVAL_REAL_SUITES", "ROBUSTNESS_SUITES", "REGISTRY", "DataRoots", "EvalResult",
           "EvalError", "DatasetMissing", "EvalOptions", "evaluate", "evaluate_many", "names_for_suites", "check_data",
           "CORRUPTIONS", "SEVERITIES"]

REGISTRY = {
    "val": evaluate_val,
    **{f"v2-{v}": v2_evaluator(v) for v in V2_VARIANTS},
    "real": evaluate_real,
    "shankar": evaluate_shankar,
    "fgsm": evaluate_fgsm,
    "imagenet-a": evaluate_imagenet_a,
    "imagenet-c": evaluate_imagenet_c,
    "bgc": evaluate_bgc,
}
NAMES = tuple(REGISTRY)
SUITES = {"val": ("val",), "v2": tuple(f"v2-{v}" for v in V2_VARIANTS), "real": ("real",),
          "shankar": ("shankar",), "fgsm": ("fgsm",), "a": ("imagenet-a",), "c": ("imagenet-c",),
          "bgc": ("bgc",)}
EVAL_REAL_SUITES = ("val", "v2", "real", "shankar")
ROBUSTNESS_SUITES = ("fgsm", "a", "c", "bgc")


def names_for_suites(suites: Iterable[str]) -> tuple[str, ...]:
    """Evaluator names of suite words ('v2' → the three V2 variants); an evaluator name is accepted as is."""
    out = []
    for s in suites:
        if s in SUITES:
            out += SUITES[s]
        elif s in REGISTRY:
            out.append(s)
        else:
            raise ValueError(f"unknown suite '{s}'; choose from {', '.join(SUITES)} (or an evaluator name: "
                             f"{', '.join(NAMES)})")
    return tuple(dict.fromkeys(out))


def check_data(names: Iterable[str], roots: DataRoots, **options) -> None:
    """Raises DatasetMissing (a FileNotFoundError) with one sentence for the first file or folder the evaluators
    `names` will read that is missing or does not look like its layout; a run calls it with the evaluators it will
    write and the options (`EvalOptions` fields) it will use. Cheap enough to run before training (seconds at full
    scale): folders exist and hold their class folders and at least one image, val's class folders are all
    classes and its file names carry the ReaL / Shankar val indices, the JSON label files parse; pre-rendered
    ImageNet-C is checked per requested (corruption, severity) for one image."""
    names = tuple(dict.fromkeys(names))
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown evaluator(s) {unknown}; known: {', '.join(NAMES)}")
    known = set(roots.classes)
    o = _options(dict(options))

    def need(path, what, key, is_file=False) -> Path:
        return require(path, what, key, roots, is_file)

    def wrong(path, what, key, problem) -> DatasetMissing:
        return DatasetMissing(f"{what} {path} {problem}; expected {LAYOUTS[key]}; {roots.fix_hint()}.")

    val_paths = None
    if any(n in ("val", "real", "shankar", "fgsm") for n in names) or ("imagenet-c" in names
                                                                          and roots.imagenet_c is None):
        val = need(roots.val, "ImageNet val", "val")
        try:  # the val reader itself: its rule for class folders, so what passes here reads later
            val_paths = [p for p, _ in class_folder_samples(val, roots.classes, "ImageNet val")]
        except FlatValLayout:  # its sentence names the one command that arranges it, not where to point
            raise
        except EvalError as e:
            raise DatasetMissing(f"{str(e).rstrip('.')}; {roots.fix_hint()}.") from None
    for name in names:
        if name == "real":
            path = need(roots.real_json, "ImageNet-ReaL label", "real", True)
            try:
                real = read_real_labels(path)
                missing = [p for p in val_paths if val_index(p) not in real]
            except ValueError as e:  # also a file that is not JSON, or a val file name without its index
                raise wrong(path, "ImageNet-ReaL label file", "real", f"does not fit val ({e})") from None
            if missing:
                raise wrong(path, "ImageNet-ReaL label file", "real",
                            f"has no entry for {len(missing)} val images (e.g. {missing[0].name})")
        elif name == "shankar":
            path = need(roots.shankar_json, "Shankar et al. label", "shankar", True)
            try:
                read_shankar(path, list(roots.classes))
                for p in val_paths[:1]:
                    val_index(p)
            except ValueError as e:
                raise wrong(path, "Shankar et al. label file", "shankar", f"does not fit val ({e})") from None
        elif name.startswith("v2-"):
            what = f"ImageNetV2 {name[3:]} folder"
            root = need(roots.v2.get(name[3:]), f"ImageNetV2 {name[3:]}", "v2")
            folders = class_folders(root)
            bad = [f.name for f in folders if not f.name.isdigit() or int(f.name) >= len(roots.classes)]
            if bad:
                raise wrong(root, what, "v2", f"has folders {bad[:3]} that are not class indices 0.."
                                                 f"{len(roots.classes) - 1}")
            if not any(_has_image(f) for f in folders):
                raise wrong(root, what, "v2", "holds no images in <int class>/ folders")
        elif name == "imagenet-a":
            root = need(roots.imagenet_a, "ImageNet-A", "imagenet-a")
            try:
                class_folder_samples(root, roots.classes, "ImageNet-A", "imagenet-a")
            except EvalError as e:
                raise DatasetMissing(f"{str(e).rstrip('.')}; {roots.fix_hint()}.") from None
        elif name == "imagenet-c":
            bad = [c for c in o.c_corruptions if c not in CORRUPTIONS]
            if bad or not set(o.c_severities) <= set(SEVERITIES) or not o.c_corruptions:
                raise EvalError(f"ImageNet-C corruptions must come from {', '.join(CORRUPTIONS)} and severities "
                                f"from 1-5; got {bad or list(o.c_corruptions)} / {list(o.c_severities)}.")
            if roots.imagenet_c is not None:
                root = need(roots.imagenet_c, "pre-rendered ImageNet-C", "imagenet-c")
                for c in o.c_corruptions:
                    for s in o.c_severities:
                        cell = need(root / c / str(s), f"ImageNet-C {c}/{s}", "imagenet-c")
                        folders = class_folders(cell)
                        if not any(_has_image(f) for f in folders):
                            raise wrong(cell, f"ImageNet-C {c}/{s} folder", "imagenet-c",
                                        "holds no images in <class>/ folders")
                        stray = sorted(f.name for f in folders if f.name not in known)  # the evaluator refuses them
                        if stray:
                            raise wrong(cell, f"ImageNet-C {c}/{s} folder", "imagenet-c",
                                        f"has folders {stray[:3]} that are not in the class list")
        elif name == "bgc":
            root = need(roots.bgc, "background-challenge (IN-9)", "bgc")
            table = need(root / "in_to_in9.json", "IN-9 class map", "bgc", True)
            try:
                read_in_to_in9(table, len(roots.classes))
            except ValueError as e:  # not JSON, not a {index: coarse class} object
                raise wrong(table, "IN-9 class map", "bgc", f"is not this scale's index -> IN-9 class map ({e})") \
                    from None
            for sub in ("original/val", "only_bg_t/val", "fg_mask/val"):
                need(root / sub, f"IN-9 {sub.split('/')[0]}", "bgc")
            firsts = []
            for sub in ("original/val", "only_bg_t/val"):
                what = f"IN-9 {sub.split('/')[0]} folder"
                folders = class_folders(root / sub)
                bad = [f.name for f in folders if not f.name.split("_", 1)[0].isdigit()]
                if bad:
                    raise wrong(root / sub, what, "bgc", f"has folders {bad[:3]} that are not <NN_class>")
                firsts.append(next((f for f in folders if _has_image(f)), None))
                if firsts[-1] is None:
                    raise wrong(root / sub, what, "bgc", "holds no images in <NN_class>/ folders")
            image = next(p for p in sorted(firsts[0].iterdir()) if p.suffix.lower() in IMAGE_EXTENSIONS)
            need(root / "fg_mask" / "val" / firsts[0].name / f"{image.stem}.npy",
                 f"IN-9 foreground mask of {image.name}", "bgc", True)


def _has_image(folder: Path) -> bool:
    """Whether `folder` holds an image file, stopping at the first (a class folder can hold thousands)."""
    with os.scandir(folder) as it:
        return any(e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS for e in it)


def _context(model, roots, input_size, crop_ratio, device, batch_size, workers, progress, cache, options):
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    sync_module(model)  # under torchrun the ranks evaluate shards of one model: rank 0's
    ctx = EvalContext(model, roots, int(input_size), float(crop_ratio), device, batch_size, workers, progress,
                      options, cache if cache is not None else {})
    check_classes(ctx)
    return ctx


def evaluate(name: str, model: nn.Module, roots: DataRoots, *, input_size: int, crop_ratio: float = 0.875,
             device=None, batch_size: int = 128, workers: int = 0, progress: bool = True, cache: dict | None = None,
             **options) -> EvalResult:
    """Runs evaluator `name` on `model` (moved to `device`; default: where its parameters are).

    `options` are `EvalOptions` fields: fgsm_epsilon (8/255), c_images ("default": 1,000 at mini generated on the
    fly, all otherwise), c_seed (0), c_corruptions (the 15), c_severities (1-5). Pass the same `cache` dict to
    several calls on one model with unchanged weights to predict val once (evaluate_many does).
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown evaluator '{name}'; known: {', '.join(NAMES)}")
    ctx = _context(model, roots, input_size, crop_ratio, device, batch_size, workers, progress, cache,
                   _options(options))
    return REGISTRY[name](ctx)


def evaluate_many(names: Iterable[str], model: nn.Module, roots: DataRoots, **kw) -> dict[str, EvalResult]:
    """`evaluate` for each name, sharing one cache (val logits are computed once)."""
    cache = kw.pop("cache", None) or {}
    return {n: evaluate(n, model, roots, cache=cache, **kw) for n in names}


def _options(options: dict) -> EvalOptions:
    import dataclasses
    valid = {f.name for f in dataclasses.fields(EvalOptions)}
    bad = sorted(set(options) - valid)
    if bad:
        raise ValueError(f"unknown evaluator option(s) {bad}; valid: {sorted(valid)}")
    for k in ("c_corruptions", "c_severities"):
        if k in options:
            options[k] = tuple(options[k])
    return EvalOptions(**options)
