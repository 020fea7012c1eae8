"""Table 3: Shankar et al.'s multi-label val annotations — the val logits re-scored, two variants recorded.

(a) `top1`: problematic images skipped, top-1 ∈ `correct`, plain mean; (b) `top1_unclear_classavg`: top-1 ∈
`correct ∪ unclear`, averaged per original class (docs/references.md).
"""
from __future__ import annotations

from relabel.data.readers import read_shankar, val_index
from relabel.metrics import shankar_accuracy
from relabel.evaluators.base import EvalContext, EvalError, EvalResult, hits_entry
from relabel.evaluators.unit import Column, DataCheck, Unit
from relabel.evaluators.val import val_logits


def strict_hits_entry(paths, logits, ann, ctx: EvalContext, top1: float) -> dict:
    """Variant (a)'s per-image outcomes (argmax ∈ `correct`, problematic and unannotated images left out), in val
    order: the evidence of `top1`, for this unit and for Vasudevan et al.'s labels in the same schema."""
    scored = [(p, y in ann.correct[i]) for p, y in zip(paths, logits.argmax(1).tolist())
              for i in (val_index(p),) if i in ann.correct and i not in ann.problematic]
    return hits_entry([h for _, h in scored], [p for p, _ in scored], ctx.roots.val, top1)


def evaluate_shankar(ctx: EvalContext) -> EvalResult:
    path = ctx.require(ctx.roots.shankar_json, "Shankar et al. label", "shankar", is_file=True)
    paths, labels, logits = val_logits(ctx)
    try:
        ann = read_shankar(path, list(ctx.roots.classes))
        metrics = shankar_accuracy(logits, paths, labels, ann)
    except ValueError as e:
        raise EvalError(f"Shankar et al. labels {path}: {e}") from None
    outcomes = {"top1": strict_hits_entry(paths, logits, ann, ctx, metrics["top1"])}
    return EvalResult(metrics, ctx.dataset("shankar-multilabel", "val", metrics["n_scored"], ctx.roots.val,
                                           labels=str(path)),
                      {**ctx.base_params(), "shankar_variants": "top1=(a) correct, plain mean; "
                                                                "top1_unclear_classavg=(b) correct|unclear, class mean"},
                      outcomes)


def check(name: str, chk: DataCheck) -> None:
    path = chk.need(chk.roots.shankar_json, "Shankar et al. label", "shankar", True)
    try:
        read_shankar(path, list(chk.roots.classes))
        for p in chk.val_paths[:1]:
            val_index(p)
    except ValueError as e:
        raise chk.wrong(path, "Shankar et al. label file", "shankar", f"does not fit val ({e})") from None


UNIT = Unit(
    suite="shankar", section="eval_real", evaluators={"shankar": evaluate_shankar},
    layout_key="shankar",
    layout='Shankar et al. JSON {"initial_annots": {file: {"correct", "unclear", "wrong"}}, ...}',
    check=check, reads_val=lambda roots: True,
    full_folder="shankar/", full_tree=("shankar/human_accuracy_v3.0.0.json",),
    mini="<world>/val/shankar.json (from the same scene annotation as ReaL: `correct` is the ReaL set)",
    columns=(Column("table3", "shankar", "Shankar et al.", "shankar"),),
    headline={"shankar": (("top1", "top1_unclear_classavg"), "top-1 (a) / (b)")},
    mini_test_images={"shankar": 20000},
)
