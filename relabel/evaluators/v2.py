"""Tables 3 and A1: ImageNetV2's three variants (Top-Images, Matched Frequency, Threshold 0.7), top-1/top-5.

Each variant is its own evaluator (its own records) in one unit, the `--suite v2` word. The label is int(folder
name): torchvision's ImageFolder would sort '10' before '2' and mislabel (docs/references.md).
"""
from __future__ import annotations

from relabel.data.readers import class_folders, list_int_folders
from relabel.metrics import predict, topk_accuracy
from relabel.evaluators.base import EvalContext, EvalError, EvalResult, PathSet, has_image, hits_entry
from relabel.evaluators.roots import V2_VARIANTS
from relabel.evaluators.unit import Column, DataCheck, Unit
from relabel.evaluators.val import top1_hits


def v2_evaluator(variant: str):
    def evaluate_v2(ctx: EvalContext) -> EvalResult:
        root = ctx.require(ctx.roots.v2.get(variant), f"ImageNetV2 {variant}", "v2")
        samples = list_int_folders(root)  # label = int(folder): '10' is class 10, not the 3rd folder
        if not samples:
            raise EvalError(f"ImageNetV2 {variant} folder {root} holds no images.")
        bad = sorted({y for _, y in samples if not 0 <= y < ctx.num_classes})
        if bad:
            raise EvalError(f"ImageNetV2 {variant} folder {root} has class folders {bad[:3]} outside "
                            f"0..{ctx.num_classes - 1}; is it the right scale?")
        paths, labels = [p for p, _ in samples], [y for _, y in samples]
        logits = predict(ctx.model, PathSet(paths, ctx.transform()), ctx.batch_size, ctx.workers, ctx.device,
                         desc=f"v2-{variant}", progress=ctx.progress)
        metrics = topk_accuracy(logits, labels)
        return EvalResult(metrics, ctx.dataset(f"imagenetv2-{variant}", "test", len(samples), root),
                          ctx.base_params(),
                          {"top1": hits_entry(top1_hits(logits, labels), paths, root, metrics["top1"])})
    evaluate_v2.__doc__ = f"ImageNetV2 {variant}: top-1/top-5 with label = int(folder name)."
    return evaluate_v2


def check(name: str, chk: DataCheck) -> None:
    roots, variant = chk.roots, name[3:]
    what = f"ImageNetV2 {variant} folder"
    root = chk.need(roots.v2.get(variant), f"ImageNetV2 {variant}", "v2")
    folders = class_folders(root)
    bad = [f.name for f in folders if not f.name.isdigit() or int(f.name) >= len(roots.classes)]
    if bad:
        raise chk.wrong(root, what, "v2", f"has folders {bad[:3]} that are not class indices 0.."
                                          f"{len(roots.classes) - 1}")
    if not any(has_image(f) for f in folders):
        raise chk.wrong(root, what, "v2", "holds no images in <int class>/ folders")


_SHORT = {"top-images": ("v2_top", "V2 Top-Images"), "matched-frequency": ("v2_mf", "V2 Matched Frequency"),
          "threshold0.7": ("v2_t07", "V2 Threshold 0.7")}
UNIT = Unit(
    suite="v2", section="eval_real", evaluators={f"v2-{v}": v2_evaluator(v) for v in V2_VARIANTS},
    layout_key="v2", layout="<v2 variant>/<int class>/<image> (label = int(folder name))", check=check,
    full_folder="imagenetv2/", full_tree=("imagenetv2/imagenetv2-<variant>-format-val/<0..999>/",),
    mini="<world>/v2/<variant>/<int class>/ (relabel.data.bench_splits.write_v2: fresh scenes, harder per variant)",
    # Table 3's V2 column is Top-Images (its footnote); Table A1 has all three
    columns=(Column("table3", "v2", "ImageNetV2 (Top-Images)", "v2-top-images"),
             *(Column("tableA1", _SHORT[v][0], _SHORT[v][1], f"v2-{v}") for v in V2_VARIANTS)),
    headline={f"v2-{v}": (("top1", "top5"), "top-1 / top-5") for v in V2_VARIANTS},
    mini_test_images={f"v2-{v}": 10_000 for v in V2_VARIANTS},
)
