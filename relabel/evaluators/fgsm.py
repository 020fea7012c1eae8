"""Table 7: FGSM — one signed-gradient step in un-normalised [0, 1] pixel space on eval-transformed val images.

x' = clip(x + ε·sign(∇ₓ CE(f(x), y)), 0, 1) with normalisation inside the model; ε is not stated in the paper and
is a recorded param (8/255 by default). Under torchrun each rank attacks its share of the batches.
"""
from __future__ import annotations

import torch

from relabel.dist import batch_shard
from relabel.metrics import Normalized, fgsm
from relabel.progress import bar as progress_bar
from relabel.evaluators.base import EvalContext, EvalResult, PathSet, hits_entry
from relabel.evaluators.unit import Column, Unit
from relabel.evaluators.val import val_samples
from relabel.loader import IMAGENET_MEAN, IMAGENET_STD


def evaluate_fgsm(ctx: EvalContext) -> EvalResult:
    eps = float(ctx.options.fgsm_epsilon)
    paths, labels = val_samples(ctx)
    model01 = Normalized(ctx.model, IMAGENET_MEAN, IMAGENET_STD).to(ctx.device).eval()
    was = ctx.model.training
    ctx.model.eval()
    shard = batch_shard(len(paths), ctx.batch_size)  # under torchrun each rank attacks its share of the batches
    loader = torch.utils.data.DataLoader(PathSet(paths, ctx.transform(normalize=False)),
                                         batch_sampler=shard.batches, num_workers=ctx.workers)
    labels_t = torch.as_tensor(labels)
    rows = []  # per image: (clean hit, adversarial hit)
    for x, idx in progress_bar(iterable=loader, desc=f"fgsm ε={eps:.4g}", disable=not ctx.progress or shard.rank > 0,
                               leave=False):
        x, y = x.to(ctx.device), labels_t[idx].to(ctx.device)
        x_adv = fgsm(model01, x, y, eps)
        with torch.no_grad():
            rows.append(torch.stack([model01(x).argmax(1) == y, model01(x_adv).argmax(1) == y], 1).cpu())
    clean, adv = shard.gather(rows).unbind(1)
    ctx.model.train(was)
    metrics = {"top1": 100.0 * adv.double().mean().item(), "clean_top1": 100.0 * clean.double().mean().item()}
    return EvalResult(metrics, ctx.dataset("imagenet-val", "val", len(paths), ctx.roots.val),
                      {**ctx.base_params(), "eval_amp": "fp32", "fgsm_epsilon": eps,
                       "fgsm_space": "[0,1] pixels after the eval transform; normalisation inside the model"},
                      {"top1": hits_entry(adv, paths, ctx.roots.val, metrics["top1"])})


UNIT = Unit(
    suite="fgsm", section="robustness", evaluators={"fgsm": evaluate_fgsm},
    layout_key="fgsm", layout=None, reads_val=lambda roots: True,  # val's images, checked by val's check
    mini="<world>/val/ (attacked as ImageNet val is)",
    columns=(Column("table7", "fgsm", "FGSM", "fgsm", "top1"),),
    headline={"fgsm": (("top1", "clean_top1"), "adv. top-1 / clean")},
    mini_test_images={"fgsm": 20000},
)
