"""Shared evaluation protocol: a model's logits on an image list, and the accuracy metrics built on them.

Evaluators (`relabel.evaluators`, used by eval_real/ and robustness/) all reduce to `predict` + a metric here:
single-label top-k (ImageNet val, V2), label-set accuracy (ReaL: argmax ∈ set, empty sets excluded; Shankar et
al., two variants), restricted-logit accuracy (ImageNet-A), IN-9 coarse accuracy (background challenge),
ImageNet-C summaries (mean accuracy, mCE with the AlexNet constants keyed by name) and the FGSM step. The facts
behind each definition are in docs/references.md.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Mapping, Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from relabel.progress import bar as progress_bar

from relabel.data.readers import ShankarLabels, val_index
from relabel.dist import batch_shard, sync_module

# ImageNet-C (Hendrycks & Dietterich): AlexNet's error averaged over severities 1-5, per corruption. mCE divides
# by these, so they are looked up by name; a positional list silently misaligns when corruptions are reordered.
ALEXNET_ERR = {
    "gaussian_noise": 0.886428, "shot_noise": 0.894468, "impulse_noise": 0.922640,
    "defocus_blur": 0.819880, "glass_blur": 0.826268, "motion_blur": 0.785948, "zoom_blur": 0.798360,
    "snow": 0.866816, "frost": 0.826572, "fog": 0.819324, "brightness": 0.564592, "contrast": 0.853204,
    "elastic_transform": 0.646056, "pixelate": 0.717840, "jpeg_compression": 0.606500,
}
CORRUPTIONS = tuple(ALEXNET_ERR)  # the 15 benchmark corruptions, in the benchmark's order
SEVERITIES = (1, 2, 3, 4, 5)


@torch.no_grad()
def predict(model: nn.Module, dataset, batch_size: int = 256, workers: int = 0, device=None,
            desc: str = "eval", progress: bool = True) -> torch.Tensor:
    """Logits [N, C] (float32, on the CPU) of `dataset` items (image, index), in dataset order. Under torchrun each
    rank forwards its share of the batches (`relabel.dist.BatchShard`: the batches one process forms) with rank 0's
    weights (`relabel.dist.sync_module`) and every rank gets all N rows, the same bit for bit as rank 0 computes
    alone."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    sync_module(model)
    was_training = model.training
    model.eval()
    shard = batch_shard(len(dataset), batch_size)
    loader = DataLoader(dataset, batch_sampler=shard.batches, num_workers=workers)
    amp = device.type == "cuda"
    rows = []
    for x, _ in progress_bar(iterable=loader, desc=desc, disable=not progress or shard.rank > 0, leave=False):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            rows.append(model(x.to(device, non_blocking=True)).float().cpu())
    model.train(was_training)
    return shard.gather(rows)


def topk_accuracy(logits: torch.Tensor, labels: Sequence[int], ks=(1, 5)) -> dict:
    """{'top1': %, 'top5': %}: the label among the k highest logits (k capped at the class count)."""
    labels = torch.as_tensor(labels)
    out = {}
    for k in ks:
        top = logits.topk(min(k, logits.shape[1]), dim=1).indices
        out[f"top{k}"] = 100.0 * (top == labels[:, None]).any(1).double().mean().item()
    return out


def set_accuracy(logits: torch.Tensor, label_sets: Sequence[Sequence[int]], k: int = 1) -> tuple[float, int]:
    """(% of scored images whose top-k predictions meet their label set, number scored); empty sets excluded."""
    top = logits.topk(min(k, logits.shape[1]), dim=1).indices.tolist()
    hits = [bool(set(t) & set(s)) for t, s in zip(top, label_sets) if len(s) > 0]
    if not hits:
        raise ValueError("no image has a non-empty label set; nothing to score")
    return 100.0 * sum(hits) / len(hits), len(hits)


def real_accuracy(logits: torch.Tensor, files: Sequence, real: Mapping[int, Sequence[int]], ks=(1, 5)) -> dict:
    """ReaL top-k (Beyer et al.): images matched to `real.json` by the val index in their file name; images with
    an empty label set are left out of numerator and denominator (3,163 of ImageNet's 50,000)."""
    missing = [f for f in files if val_index(f) not in real]
    if missing:
        raise ValueError(f"{len(missing)} val images (e.g. {missing[0]}) have no entry in the ReaL label file; "
                         f"is it the label file of this val set?")
    sets = [real[val_index(f)] for f in files]
    out = {}
    for k in ks:
        out[f"top{k}"], n = set_accuracy(logits, sets, k)
    out["n_scored"], out["n_empty"] = n, sum(not s for s in sets)
    return out


def shankar_accuracy(logits: torch.Tensor, files: Sequence, labels: Sequence[int], ann: ShankarLabels) -> dict:
    """Shankar et al.'s multi-label accuracy, both published variants, over annotated, non-problematic images:

    * `top1`: (a) top-1 ∈ `correct`, plain mean over images (the stricter one; Table 3's column);
    * `top1_unclear_classavg`: (b) top-1 ∈ `correct` ∪ `unclear`, averaged within each original class, then over
      the classes that have scored images.
    """
    pred = logits.argmax(1).tolist()
    strict, lenient = [], defaultdict(list)
    for f, y, p in zip(files, labels, pred):
        i = val_index(f)
        if i not in ann.correct or i in ann.problematic:
            continue
        strict.append(p in ann.correct[i])
        lenient[int(y)].append(p in ann.correct[i] | ann.unclear.get(i, set()))
    if not strict:
        raise ValueError("no val image is annotated (and unproblematic) in the Shankar et al. label file")
    return {"top1": 100.0 * float(np.mean(strict)),
            "top1_unclear_classavg": 100.0 * float(np.mean([np.mean(v) for v in lenient.values()])),
            "n_scored": len(strict), "n_classes": len(lenient),
            "n_problematic": sum(val_index(f) in ann.problematic for f in files)}


def subset_accuracy(logits: torch.Tensor, labels: Sequence[int], indices: Sequence[int]) -> float:
    """ImageNet-A/-R protocol: keep only the logits of the subset's classes (`indices`, fine class indices) and
    take the argmax among them; `labels` are fine class indices. Returns top-1 in %."""
    indices = torch.as_tensor(list(indices))
    pred = indices[logits[:, indices].argmax(1)]
    return 100.0 * (pred == torch.as_tensor(labels)).double().mean().item()


def coarse_predictions(logits: torch.Tensor, in_to_in9: np.ndarray) -> torch.Tensor:
    """IN-9 class of each image: argmax over ALL fine logits, then mapped; -1 (a class outside IN-9) is wrong."""
    return torch.as_tensor(in_to_in9)[logits.argmax(1).cpu()]


def corruption_summary(acc: Mapping[str, Mapping]) -> dict:
    """ImageNet-C summary from top-1 accuracies in % keyed `acc[corruption][severity]` (any order).

    mean_acc: mean over all (corruption, severity) cells (Table 7's number). CE_c = 100 · Σ_s err(c,s) /
    Σ_s err_AlexNet(c,s) = 100 · mean_s err(c,s) / ALEXNET_ERR[c]; mce = mean of CE_c over the corruptions that
    have AlexNet constants (all 15 for the full benchmark); mean_err = unnormalised mean error in %.
    """
    if not acc:
        raise ValueError("no corruption results to summarise")
    cells = [float(a) for sev in acc.values() for a in sev.values()]
    ce = {}
    for name, sev in acc.items():
        if name in ALEXNET_ERR:
            err = np.mean([1.0 - float(a) / 100.0 for a in sev.values()])
            ce[name] = 100.0 * err / ALEXNET_ERR[name]
    out = {"mean_acc": float(np.mean(cells)), "mean_err": 100.0 - float(np.mean(cells)), "ce": ce,
           "n_corruptions": len(acc)}
    if ce:
        out["mce"] = float(np.mean(list(ce.values())))
    return out


class Normalized(nn.Module):
    """A model that takes un-normalised [0, 1] pixels: normalisation happens inside, so attacks (FGSM) step and
    clip in pixel space, as the benchmark defines them."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def fgsm(model01: nn.Module, x: torch.Tensor, y: torch.Tensor, epsilon: float) -> torch.Tensor:
    """One FGSM step (Goodfellow et al.): clip(x + ε·sign(∇ₓ CE(f(x), y)), 0, 1), with x in [0, 1] and `model01`
    normalising inside (see `Normalized`). The loss is summed, so no per-image gradient underflows to zero."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model01(x).float(), y, reduction="sum")
        (grad,) = torch.autograd.grad(loss, x)
    return (x.detach() + epsilon * grad.sign()).clamp_(0.0, 1.0)
