"""The evaluator registry: a model + a `DataRoots` → metrics for every benchmark of Tables 3, A1 and 7.

    from relabel import evaluators as E
    roots = E.DataRoots.for_scale("mini")                      # or DataRoots.full("/data")
    res = E.evaluate("real", model, roots, input_size=48)      # EvalResult(metrics, dataset, params)
    all_ = E.evaluate_many(E.NAMES, model, roots, input_size=48)  # shares the val logits

Names (what records carry and results/tables.py reads): val, v2-top-images, v2-matched-frequency,
v2-threshold0.7, real, shankar (eval_real/); fgsm, imagenet-a, imagenet-c, bgc (robustness/). `SUITES` groups
them as the CLIs' `--suite` words. The model takes ImageNet-normalised images and outputs one logit per class of
`roots.classes`; anything that does not fit raises `EvalError` with a one-sentence fix.
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn as nn

from relabel.evaluate import CORRUPTIONS, SEVERITIES
from relabel.evaluators.base import (DatasetMissing, EvalContext, EvalError, EvalOptions, EvalResult, check_classes,
                                     require)
from relabel.evaluators.classification import evaluate_real, evaluate_shankar, evaluate_val, v2_evaluator
from relabel.evaluators.corruptions import evaluate_imagenet_c
from relabel.evaluators.robust import evaluate_bgc, evaluate_fgsm, evaluate_imagenet_a
from relabel.evaluators.roots import V2_VARIANTS, DataRoots

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
    """Raises DatasetMissing for the first file or folder the evaluators `names` need and `roots` lacks, so a
    command fails in a second instead of after the first benchmarks."""
    o = _options(dict(options))

    def need(path, what, key, is_file=False):
        require(path, what, key, roots.scale, is_file)
    for name in names:
        if name in ("val", "real", "shankar", "fgsm") or (name == "imagenet-c" and roots.imagenet_c is None):
            need(roots.val, "ImageNet val", "val")
        if name == "real":
            need(roots.real_json, "ImageNet-ReaL label", "real", True)
        elif name == "shankar":
            need(roots.shankar_json, "Shankar et al. label", "shankar", True)
        elif name.startswith("v2-"):
            need(roots.v2.get(name[3:]), f"ImageNetV2 {name[3:]}", "v2")
        elif name == "imagenet-a":
            need(roots.imagenet_a, "ImageNet-A", "imagenet-a")
        elif name == "imagenet-c":
            bad = [c for c in o.c_corruptions if c not in CORRUPTIONS]
            if bad or not set(o.c_severities) <= set(SEVERITIES) or not o.c_corruptions:
                raise EvalError(f"ImageNet-C corruptions must come from {', '.join(CORRUPTIONS)} and severities "
                                f"from 1-5; got {bad or list(o.c_corruptions)} / {list(o.c_severities)}.")
            if roots.imagenet_c is not None:
                need(roots.imagenet_c, "pre-rendered ImageNet-C", "imagenet-c")
        elif name == "bgc":
            need(roots.bgc, "background-challenge (IN-9)", "bgc")
            need(roots.bgc / "in_to_in9.json", "IN-9 class map", "bgc", True)
            for sub in ("original/val", "only_bg_t/val", "fg_mask/val"):
                need(roots.bgc / sub, f"IN-9 {sub.split('/')[0]}", "bgc")


def _context(model, roots, input_size, crop_ratio, device, batch_size, workers, progress, cache, options):
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.to(device)
    ctx = EvalContext(model, roots, int(input_size), float(crop_ratio), device, batch_size, workers, progress,
                      options, cache if cache is not None else {})
    check_classes(ctx)
    return ctx


def evaluate(name: str, model: nn.Module, roots: DataRoots, *, input_size: int, crop_ratio: float = 0.875,
             device=None, batch_size: int = 128, workers: int = 0, progress: bool = True, cache: dict | None = None,
             **options) -> EvalResult:
    """Runs evaluator `name` on `model` (moved to `device`; default: where its parameters are).

    `options` are `EvalOptions` fields: fgsm_epsilon (8/255), c_images ("default": 300 at mini generated on the
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
