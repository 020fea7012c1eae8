"""mAP for multi-label classification: the mean over classes of each class's average precision (Table 10).

AP of one class ranks all evaluation images by the class's score and takes AP = Σ_n (R_n − R_{n−1}) · P_n over
the distinct score thresholds, from the highest down — scikit-learn's `average_precision_score` (no
interpolation; tied scores form one threshold, so their order does not matter). A class without positive images
has no defined recall; scikit-learn returns 0 with a warning for it, which would lower the mean for a reason that
has nothing to do with the model, so such classes are left out of the mean and counted in `classes_without_positives`
(full COCO val has none; docs/references.md: the metric is the per-class AP of scikit-learn, averaged).
"""
from __future__ import annotations

import numpy as np


def average_precision(y_true: np.ndarray, score: np.ndarray) -> float:
    """AP of one class: `y_true` [N] in {0, 1}, `score` [N]; NaN if there is no positive."""
    y_true = np.asarray(y_true).astype(bool).ravel()
    score = np.asarray(score, dtype=np.float64).ravel()
    if y_true.shape != score.shape:
        raise ValueError(f"labels and scores differ in length ({y_true.size} vs {score.size}).")
    n_pos = int(y_true.sum())
    if n_pos == 0:
        return float("nan")
    order = np.argsort(-score, kind="stable")
    s, t = score[order], y_true[order]
    tp = np.cumsum(t)
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # the last index of each run of equal scores
    tp, n = tp[last], last + 1
    recall, precision = tp / n_pos, tp / n
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def mean_average_precision(targets: np.ndarray, scores: np.ndarray) -> dict:
    """{'map': %, 'ap': [per-class % or None], 'classes_scored', 'classes_without_positives'} for
    `targets` [N, C] in {0, 1} and `scores` [N, C] (logits or probabilities: only the order matters)."""
    targets, scores = np.asarray(targets), np.asarray(scores)
    if targets.shape != scores.shape or targets.ndim != 2:
        raise ValueError(f"targets and scores must both be [N, C]; got {targets.shape} and {scores.shape}.")
    ap = [average_precision(targets[:, c], scores[:, c]) for c in range(targets.shape[1])]
    scored = [a for a in ap if not np.isnan(a)]
    if not scored:
        raise ValueError("no class has a positive image; mAP is undefined on this evaluation set.")
    return {"map": 100.0 * float(np.mean(scored)), "ap": [None if np.isnan(a) else 100.0 * a for a in ap],
            "classes_scored": len(scored), "classes_without_positives": len(ap) - len(scored)}
