"""Beyond the paper: Vasudevan et al. 2022 ("When does dough become a bagel?"), multi-label val and ImageNet-M.

Their re-review of the mistakes that top models still make on Shankar et al.'s multi-label val subset, read from
one JSON under the full-scale data root (the format, and what is assumed about it, in docs/evaluators.md):

    <root>/vasudevan/imagenet_multilabel.json
    {"images": {"ILSVRC2012_val_00000001.JPEG": {"correct": [65], "unclear": [], "wrong": [...]}, ...},
     "imagenet_m": ["ILSVRC2012_val_....JPEG", ...]}            # the 68 ImageNet-Major images

Class ids are ImageNet-1k indices (position in the sorted wnid list, TFDS `imagenet2012_multilabel`'s labels);
wnids are accepted too. Metrics, on the val logits that val/ReaL/Shankar share:
* `top1`: multi-label accuracy, top-1 ∈ `correct`, over the val images the file covers (an empty `correct` set is
  left out, as ReaL leaves out its empty sets);
* `imagenet_m_acc` / `imagenet_m_err`: over the ImageNet-M images, top-1 ∈ `correct ∪ unclear` (their scoring:
  only a major mistake counts), and `imagenet_m_mistakes`, how many of them the model gets wrong.

No mini analogue: the mini world's true label sets are already its ReaL sets (and Shankar's `correct`), so a mini
version would repeat the ReaL column, and ImageNet-M is chosen by experts reviewing real models' major mistakes,
which the world has no counterpart of; the unit refuses at mini in one sentence (exit 1 in the CLIs).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from relabel.data.readers import val_index
from relabel.evaluators.base import EvalContext, EvalError, EvalResult, hits_entry
from relabel.evaluators.unit import DataCheck, Unit
from relabel.evaluators.val import top1, val_logits

KINDS = ("correct", "unclear", "wrong")


@dataclass
class VasudevanLabels:
    """Label sets keyed by 1-based val index, classes as indices into the class list."""
    correct: dict[int, set[int]] = field(default_factory=dict)
    unclear: dict[int, set[int]] = field(default_factory=dict)
    imagenet_m: list[int] = field(default_factory=list)


def read_vasudevan(path: str | Path, classes: list[str]) -> VasudevanLabels:
    """The JSON of the module docstring; ValueError with one sentence for a file that is not JSON or not this
    layout, or names a class outside `classes`."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"is not JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), dict) \
            or not isinstance(data.get("imagenet_m"), list):
        raise ValueError('is not an object with "images" (file name → label sets) and "imagenet_m" (file names)')
    index = {c: k for k, c in enumerate(classes)}
    out = VasudevanLabels()
    for fname, ann in data["images"].items():
        if not isinstance(ann, dict) or not isinstance(ann.get("correct"), list):
            raise ValueError(f'has an entry for {fname} without a "correct" list')
        i = val_index(fname)
        sets = {}
        for kind in KINDS:
            ids = ann.get(kind, [])
            bad = [c for c in ids if not (c in index if isinstance(c, str) else
                                          isinstance(c, int) and 0 <= c < len(classes))]
            if bad:
                raise ValueError(f"names classes {bad[:3]} for {fname} that are not in the {len(classes)}-class list")
            sets[kind] = {index[c] if isinstance(c, str) else c for c in ids}
        out.correct[i], out.unclear[i] = sets["correct"], sets["unclear"]
    for fname in data["imagenet_m"]:
        i = val_index(fname)
        if i not in out.correct:
            raise ValueError(f'lists {fname} in "imagenet_m" but has no label sets for it under "images"')
        out.imagenet_m.append(i)
    return out


def evaluate_vasudevan(ctx: EvalContext) -> EvalResult:
    path = ctx.require(ctx.roots.vasudevan_json, "Vasudevan et al. label", "vasudevan", is_file=True)
    paths, _, logits = val_logits(ctx)
    try:
        ann = read_vasudevan(path, list(ctx.roots.classes))
    except ValueError as e:
        raise EvalError(f"Vasudevan et al. label file {path} {e}.") from None
    pred = dict(zip((val_index(p) for p in paths), top1(logits).tolist()))
    at = {val_index(p): p for p in paths}
    scored = [(at[i], pred[i] in ann.correct[i]) for i in sorted(ann.correct) if i in pred and ann.correct[i]]
    major = [(at[i], pred[i] in ann.correct[i] | ann.unclear[i]) for i in ann.imagenet_m if i in pred]
    if not scored or len(major) < len(ann.imagenet_m):
        raise EvalError(f"Vasudevan et al. label file {path} covers {len(scored)} of the val images found and "
                        f"{len(major)} of its {len(ann.imagenet_m)} ImageNet-M images; it must be the file of this "
                        f"val set (ImageNet's, by val file name).")
    metrics = {"top1": 100.0 * sum(h for _, h in scored) / len(scored), "n_scored": len(scored)}
    outcomes = {"top1": hits_entry([h for _, h in scored], [p for p, _ in scored], ctx.roots.val, metrics["top1"])}
    if major:
        acc = 100.0 * sum(h for _, h in major) / len(major)
        metrics.update(imagenet_m_acc=acc, imagenet_m_err=100.0 - acc,
                       imagenet_m_mistakes=sum(not h for _, h in major), n_imagenet_m=len(major))
        outcomes["imagenet_m_acc"] = hits_entry([h for _, h in major], [p for p, _ in major], ctx.roots.val, acc)
    return EvalResult(metrics, ctx.dataset("vasudevan-multilabel", "val", len(scored), ctx.roots.val,
                                           labels=str(path)),
                      {**ctx.base_params(), "vasudevan_metrics": "top1: top-1 in correct over covered images; "
                                                                 "imagenet_m_acc: top-1 in correct|unclear"},
                      outcomes)


def check(name: str, chk: DataCheck) -> None:
    path = chk.need(chk.roots.vasudevan_json, "Vasudevan et al. label", "vasudevan", True)
    try:
        ann = read_vasudevan(path, list(chk.roots.classes))
    except ValueError as e:
        raise chk.wrong(path, "Vasudevan et al. label file", "vasudevan", str(e)) from None
    found = {val_index(p) for p in chk.val_paths}
    missing = [i for i in ann.imagenet_m if i not in found]
    if missing:
        raise chk.wrong(path, "Vasudevan et al. label file", "vasudevan",
                        f"lists {len(missing)} ImageNet-M images that are not in val (e.g. "
                        f"ILSVRC2012_val_{missing[0]:08d})")
    if not found & set(ann.correct):
        raise chk.wrong(path, "Vasudevan et al. label file", "vasudevan", "covers none of the val images")


UNIT = Unit(
    suite="vasudevan", section="eval_real", evaluators={"vasudevan": evaluate_vasudevan},
    layout_key="vasudevan",
    layout='<vasudevan>/imagenet_multilabel.json = {"images": {val file: {"correct": [class ids], "unclear": [...], '
           '"wrong": [...]}}, "imagenet_m": [val files]} (docs/evaluators.md)',
    check=check, reads_val=lambda roots: True,
    full_folder="vasudevan/", full_tree=("vasudevan/imagenet_multilabel.json",),
    mini_refusal="Vasudevan et al.'s evaluation runs at --scale full only: the mini world's true label sets are "
                 "already its ReaL sets, so a mini analogue would repeat the ReaL column, and ImageNet-M's images "
                 "are chosen by experts from real models' major mistakes (docs/evaluators.md).",
    paper=False,
    headline={"vasudevan": (("top1", "imagenet_m_acc", "imagenet_m_mistakes"), "multi-label top-1 / IN-M acc / "
                                                                                "IN-M mistakes")},
)
