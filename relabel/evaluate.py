"""Shared evaluation protocol: a model's logits on an image list, and the accuracy metrics built on them.

Evaluators (eval_real/, robustness/) all reduce to `predict` + a metric: single-label top-k (ImageNet val, V2),
label-set accuracy (ReaL: argmax ∈ set, empty sets excluded; Shankar et al.), restricted-logit accuracy (IN-A).
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm import tqdm


@torch.no_grad()
def predict(model: nn.Module, dataset, batch_size: int = 256, workers: int = 0, device=None,
            desc: str = "eval", progress: bool = True) -> torch.Tensor:
    """Logits [N, C] (float32, on the CPU) of `dataset` items (image, index), in dataset order."""
    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [None] * len(dataset)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, shuffle=False)
    amp = device.type == "cuda"
    for x, idx in tqdm(loader, desc=desc, disable=not progress, leave=False, dynamic_ncols=True):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(x.to(device, non_blocking=True)).float().cpu()
        for i, row in zip(idx.tolist(), logits):
            out[i] = row
    model.train(was_training)
    return torch.stack(out)


def topk_accuracy(logits: torch.Tensor, labels: Sequence[int], ks=(1, 5)) -> dict:
    """{'top1': %, 'top5': %}: the label among the k highest logits (k capped at the class count)."""
    labels = torch.as_tensor(labels)
    out = {}
    for k in ks:
        top = logits.topk(min(k, logits.shape[1]), dim=1).indices
        out[f"top{k}"] = 100.0 * (top == labels[:, None]).any(1).float().mean().item()
    return out


def set_accuracy(logits: torch.Tensor, label_sets: Sequence[Sequence[int]], k: int = 1) -> tuple[float, int]:
    """(% of scored images whose top-k predictions meet their label set, number scored); empty sets excluded."""
    top = logits.topk(k, dim=1).indices.tolist()
    hits = [bool(set(t) & set(s)) for t, s in zip(top, label_sets) if len(s) > 0]
    if not hits:
        raise ValueError("no image has a non-empty label set; nothing to score")
    return 100.0 * sum(hits) / len(hits), len(hits)
