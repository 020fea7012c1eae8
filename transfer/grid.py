"""Hyper-parameter grid search with Table 8's two reporting protocols: best on test (paper) and selected on holdout.

The paper grid-searches learning rate × weight decay per task "and reports the best performance", i.e. the
maximum over the grid of the test accuracy itself (`top1_best_on_test`, optimistic by construction). The honest
protocol picks the grid point on data the reported number never sees — a held-out slice of train or the
dataset's val split — and reports that point's test accuracy (`top1_selected_on_holdout`).
"""
from __future__ import annotations

import itertools
from typing import Callable, Iterable, Mapping, Sequence


def grid(**axes: Sequence) -> list[dict]:
    """All combinations of the axes, in a fixed order (the first axis varies slowest): grid(lr=[..], wd=[..])."""
    names = list(axes)
    return [dict(zip(names, values)) for values in itertools.product(*(axes[n] for n in names))]


def select(results: Sequence[Mapping], on: str) -> Mapping:
    """The result with the highest `on` score; ties go to the earliest grid point (deterministic)."""
    if not results:
        raise ValueError("the grid is empty; give at least one learning rate and one weight decay")
    best = 0
    for i, r in enumerate(results):
        if r[on] > results[best][on]:
            best = i
    return results[best]


def grid_search(points: Iterable[dict], evaluate: Callable[[dict], Mapping[str, float]]) -> list[dict]:
    """Evaluates every point; each result is the point's values plus the scores `evaluate` returned."""
    return [{**p, **evaluate(p)} for p in points]


def protocols(results: Sequence[Mapping], holdout: str = "holdout_top1", test: str = "test_top1") -> dict:
    """Table 8's two numbers from one grid's results, plus which point each protocol picked."""
    paper, honest = select(results, test), select(results, holdout)
    return {"top1_best_on_test": float(paper[test]), "top1_selected_on_holdout": float(honest[test]),
            "paper_point": dict(paper), "selected_point": dict(honest)}
