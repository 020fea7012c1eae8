"""The evaluator registry: a model + a `DataRoots` → metrics for every benchmark of Tables 3, A1 and 7, and beyond.

    from relabel import evaluators as E
    roots = E.DataRoots.for_scale("mini")                      # or DataRoots.full("/data")
    res = E.evaluate("real", model, roots, input_size=48)      # EvalResult(metrics, dataset, params)
    all_ = E.evaluate_many(E.NAMES, model, roots, input_size=48)  # shares the val logits

Each benchmark is a unit, one module `relabel/evaluators/<name>.py` (`relabel.evaluators.unit.Unit`: its names,
layout and data check, run, mini split, suite); `UNIT_MODULES` lists them once and everything here derives from
it. `NAMES` are the paper's evaluators (what records carry and results/tables.py reads): val, v2-top-images,
v2-matched-frequency, v2-threshold0.7, real, shankar (eval_real/); fgsm, imagenet-a, imagenet-c, bgc
(robustness/). `REGISTRY` holds them and the evaluators beyond the paper (vasudevan: full scale only). `SUITES`
groups them as the CLIs' `--suite` words. The model takes ImageNet-normalised images and outputs one logit per
class of `roots.classes`; anything that does not fit raises `EvalError` with a one-sentence fix. `check_data(names,
roots)` looks at every file a list of evaluators will read, in seconds, before a run starts.
"""
from __future__ import annotations

import importlib
from typing import Iterable

import torch
import torch.nn as nn

from relabel.dist import sync_module
from relabel.metrics import CORRUPTIONS, SEVERITIES
from relabel.evaluators.base import (LAYOUTS, DatasetMissing, EvalContext, EvalError, EvalOptions, EvalResult,
                                     FlatValLayout, check_classes)
from relabel.evaluators.roots import FULL_FOLDER_NAMES, V2_VARIANTS, DataRoots, full_folders
from relabel.evaluators.unit import DataCheck, Unit

__all__ = ["NAMES", "SUITES", "EVAL_REAL_SUITES", "ROBUSTNESS_SUITES", "REGISTRY", "UNITS", "UNIT_MODULES", "LAYOUTS",
           "DataRoots", "EvalResult", "EvalError", "DatasetMissing", "EvalOptions", "evaluate", "evaluate_many",
           "names_for_suites", "check_data", "CORRUPTIONS", "SEVERITIES", "FlatValLayout", "V2_VARIANTS", "UNIT_OF",
           "FULL_TREE", "FULL_FOLDERS", "table_columns"]

# The evaluator units, in the order the registry, the suites and the tables list them. Adding an evaluator: one
# module under relabel/evaluators/ defining UNIT, one line here, its test (docs/adding-an-evaluator.md).
UNIT_MODULES = (
    "val",
    "v2",
    "real",
    "shankar",
    "fgsm",
    "imagenet_a",
    "imagenet_c",
    "bgc",
    "vasudevan",
)
UNITS: tuple[Unit, ...] = tuple(importlib.import_module(f"{__name__}.{m}").UNIT for m in UNIT_MODULES)
UNIT_OF = {name: u for u in UNITS for name in u.names}  # evaluator name -> its unit
REGISTRY = {name: fn for u in UNITS for name, fn in u.evaluators.items()}
NAMES = tuple(name for u in UNITS if u.paper for name in u.names)  # the paper's: every scale runs them
SUITES = {u.suite: u.names for u in UNITS}
SECTION_OF = {u.suite: u.section for u in UNITS}  # suite word -> the CLI that runs it
EVAL_REAL_SUITES = tuple(u.suite for u in UNITS if u.section == "eval_real" and u.paper)  # the CLIs' defaults
ROBUSTNESS_SUITES = tuple(u.suite for u in UNITS if u.section == "robustness" and u.paper)
# Expected layouts, quoted by the missing-data errors (base.LAYOUTS, the dict base.require reads).
LAYOUTS.update({u.layout_key: u.layout for u in UNITS if u.layout is not None})
# The full-scale tree under one data root (IMAGENET_ROOT for make, --data-root for the evaluation CLIs).
_TREE = [e for u in UNITS for e in u.full_tree]
_W = max(len(e) for e in _TREE[::2])
FULL_TREE = "\n".join("  " + "  ".join(f"{e:<{_W}}" for e in _TREE[i:i + 2]).rstrip() for i in range(0, len(_TREE), 2))
# roots.FULL_FOLDER_NAMES, for fix_hint: the folders the paper's evaluators read (a unit beyond the paper, optional,
# names its own path in its errors)
FULL_FOLDER_NAMES[:] = [u.full_folder for u in UNITS if u.full_folder and u.paper]
FULL_FOLDERS = full_folders()
HEADLINE = {name: line for u in UNITS for name, line in u.headline.items()}  # the CLIs' summary line per evaluator
ACCURACY = tuple(name for u in UNITS if u.accuracy for name in u.names)  # metric: % right over the record's images
MINI_TEST_IMAGES = {name: n for u in UNITS for name, n in u.mini_test_images.items()}  # planned sizes at mini
ROBUSTNESS = tuple(name for u in UNITS if u.section == "robustness" for name in u.names)  # Table 7's evaluators


def table_columns(table: str) -> tuple:
    """The `unit.Column`s of results/tables.py's table `table` ('table3', 'tableA1', 'table7'), in unit order."""
    return tuple(c for u in UNITS for c in u.columns if c.table == table)


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
                             f"{', '.join(REGISTRY)})")
    return tuple(dict.fromkeys(out))


def check_data(names: Iterable[str], roots: DataRoots, **options) -> None:
    """Raises DatasetMissing (a FileNotFoundError) with one sentence for the first file or folder the evaluators
    `names` will read that is missing or does not look like its layout; a run calls it with the evaluators it will
    write and the options (`EvalOptions` fields) it will use. Cheap enough to run before training (seconds at full
    scale): val first when a chosen unit reads it (its class folders are all classes), then each evaluator's own
    unit check, in the order given (folders exist and hold their class folders and an image, the label files
    parse and fit val). A unit that refuses at this scale says so in one sentence (EvalError)."""
    names = tuple(dict.fromkeys(names))
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown evaluator(s) {unknown}; known: {', '.join(REGISTRY)}")
    for n in names:
        UNIT_OF[n].refuse_at(roots.scale)
    chk = DataCheck(roots, _options(dict(options)))
    if any(UNIT_OF[n].reads_val(roots) for n in names):
        from relabel.evaluators.val import check_val
        chk.val_paths = check_val(roots)
    for name in names:
        UNIT_OF[name].check(name, chk)


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
        raise ValueError(f"unknown evaluator '{name}'; known: {', '.join(REGISTRY)}")
    UNIT_OF[name].refuse_at(roots.scale)
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
