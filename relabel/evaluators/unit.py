"""What an evaluator unit declares: its names, its data layout and check, its run, its mini split and its suite.

One module per benchmark under `relabel/evaluators/` defines `UNIT = Unit(...)`; `relabel.evaluators` lists the
modules once (`UNIT_MODULES`) and derives from them the registry, the names, the suites, the layouts quoted by
missing-data errors, the data check run before training, the CLIs' summary lines and the full-scale data tree;
`pretrain/experiments.py` (the evaluators a target writes) and `results/` (the tables' evaluator columns, the
accuracy evaluators of the claims, the planned test-set sizes) read the same units. Adding an evaluator is one
module, one line in `UNIT_MODULES` and its test (docs/adding-an-evaluator.md).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

from relabel.evaluators.base import LAYOUTS, DatasetMissing, EvalError, EvalOptions, Evaluator, require
from relabel.evaluators.roots import DataRoots


@dataclass(frozen=True)
class Column:
    """One column of a results/tables.py table that reads this unit's records: the table's id ('table3'), the
    column's key and heading, the evaluator name and the metric it shows."""
    table: str
    key: str
    label: str
    evaluator: str
    metric: str = "top1"


@dataclass
class DataCheck:
    """What a unit's `check` receives from `check_data`: the roots, the run's options, the val image paths (when
    a chosen unit reads val: checked once, first) and the two sentences every check ends in."""
    roots: DataRoots
    options: EvalOptions
    val_paths: list | None = None

    def need(self, path: Path | None, what: str, key: str, is_file: bool = False) -> Path:
        """`path`, or DatasetMissing naming it, the layout `key` and how to provide it."""
        return require(path, what, key, self.roots, is_file)

    def wrong(self, path, what: str, key: str, problem: str) -> DatasetMissing:
        """The error of a file or folder that exists but does not look like the layout `key`."""
        return DatasetMissing(f"{what} {path} {problem}; expected {LAYOUTS[key]}; {self.roots.fix_hint()}.")


def _no_check(name: str, chk: DataCheck) -> None:
    """A unit that reads only what another check covers (FGSM: val)."""


@dataclass(frozen=True)
class Unit:
    """One benchmark (or one family of variants, as ImageNetV2's three) as the registry sees it.

    suite: the `--suite` word of the CLIs ('a' for ImageNet-A); section: which CLI runs the suite ('eval_real' =
    eval_real/run.py, Tables 3/A1; 'robustness' = robustness/run.py, Table 7); evaluators: record name → run
    (`fn(EvalContext) -> EvalResult`), in the order the registry lists them; layout_key/layout: the expected
    full-scale layout, quoted by missing-data errors (`LAYOUTS[layout_key]`); check(name, DataCheck): looks in
    seconds at every file evaluator `name` will read and raises DatasetMissing with one sentence; reads_val(roots):
    whether it reads ImageNet val (checked once, before the units' own checks); full_folder / full_tree: its folder
    under the full-scale data root and its line(s) of the tree the CLIs' --help prints; mini: where the mini world
    provides its data, or `mini_refusal`, the one sentence with which it refuses at mini (exit 1); paper: whether
    the paper's tables read it (then pretraining targets write it, and the CLIs run it by default); columns: the
    results tables' columns; headline: name → (metric keys, label) of the CLIs' summary line; accuracy: its
    metric is an accuracy in % over its images (results/claims.py's binomial test-set noise); mini_test_images:
    name → the test-set size planned at mini (results/power.py).
    """
    suite: str
    section: str
    evaluators: Mapping[str, Evaluator]
    layout_key: str
    layout: str | None
    check: Callable[[str, DataCheck], None] = _no_check
    reads_val: Callable[[DataRoots], bool] = lambda roots: False
    full_folder: str | None = None
    full_tree: tuple[str, ...] = ()
    mini: str = ""
    mini_refusal: str | None = None
    paper: bool = True
    columns: tuple[Column, ...] = ()
    headline: Mapping[str, tuple[tuple[str, ...], str]] = field(default_factory=dict)
    accuracy: bool = True
    mini_test_images: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self):
        if self.section not in ("eval_real", "robustness"):
            raise ValueError(f"unit '{self.suite}': section must be 'eval_real' or 'robustness', got {self.section!r}")
        if not self.evaluators:
            raise ValueError(f"unit '{self.suite}' registers no evaluator")
        if (self.mini_refusal is None) == (not self.mini):
            raise ValueError(f"unit '{self.suite}' must say where the mini world has its data (mini) or why it "
                             "refuses at mini (mini_refusal), not both")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.evaluators)

    def refuse_at(self, scale: str) -> None:
        """The unit's one-sentence refusal (EvalError, exit 1 in the CLIs) when asked to run at mini, where the
        world provides no data for it; the CLIs ask before loading anything."""
        if self.mini_refusal is not None and scale == "mini":
            raise EvalError(self.mini_refusal)
