"""Table 3: ImageNet-ReaL (Beyer et al.) — the val logits re-scored against the re-assessed multi-label sets.

Top-k counts when any of the top k is in the image's set; images whose set is empty are left out (3,163 of
50,000 in real.json). At full scale the labels are the copy timm ships, so no download is needed.
"""
from __future__ import annotations

from relabel.data.readers import read_real_labels, val_index
from relabel.metrics import real_accuracy
from relabel.evaluators.base import EvalContext, EvalError, EvalResult, hits_entry
from relabel.evaluators.unit import Column, DataCheck, Unit
from relabel.evaluators.val import top1, val_logits


def evaluate_real(ctx: EvalContext) -> EvalResult:
    path = ctx.require(ctx.roots.real_json, "ImageNet-ReaL label", "real", is_file=True)
    paths, _, logits = val_logits(ctx)
    try:
        real = read_real_labels(path)
        metrics = real_accuracy(logits, paths, real)
    except ValueError as e:
        raise EvalError(f"ReaL labels {path}: {e}") from None
    pred = top1(logits).tolist()
    scored = [(p, y in real[val_index(p)]) for p, y in zip(paths, pred) if real[val_index(p)]]
    return EvalResult(metrics, ctx.dataset("imagenet-real", "val", metrics["n_scored"], ctx.roots.val,
                                           labels=str(path)), ctx.base_params(),
                      {"top1": hits_entry([h for _, h in scored], [p for p, _ in scored], ctx.roots.val,
                                          metrics["top1"])})


def check(name: str, chk: DataCheck) -> None:
    path = chk.need(chk.roots.real_json, "ImageNet-ReaL label", "real", True)
    try:
        real = read_real_labels(path)
        missing = [p for p in chk.val_paths if val_index(p) not in real]
    except ValueError as e:  # also a file that is not JSON, or a val file name without its index
        raise chk.wrong(path, "ImageNet-ReaL label file", "real", f"does not fit val ({e})") from None
    if missing:
        raise chk.wrong(path, "ImageNet-ReaL label file", "real",
                        f"has no entry for {len(missing)} val images (e.g. {missing[0].name})")


UNIT = Unit(
    suite="real", section="eval_real", evaluators={"real": evaluate_real},
    layout_key="real", layout="a JSON list whose entry i holds the class indices of val image i+1 (ImageNet-ReaL "
                              "real.json)",
    check=check, reads_val=lambda roots: True,
    mini="<world>/val/real.json (every object the scene annotation puts in an image)",
    columns=(Column("table3", "real", "ReaL", "real"),),
    headline={"real": (("top1", "top5"), "ReaL top-1 / top-5")},
    mini_test_images={"real": 20000},
)
