"""Beyond the paper: Vasudevan et al. 2022 ("When does dough become a bagel?"), multi-label val and ImageNet-M.

Their re-review of the mistakes top models still make on Shankar et al.'s multi-label val subset, released as an
updated `human_accuracy_v3.0.0.json` (google-research/imagenet-mistakes; the file TFDS's `imagenet2012_multilabel`
3.0.0 builds from) in Shankar et al.'s schema plus the ImageNet-M list:

    <root>/vasudevan/human_accuracy_v3.0.0.json
    {"initial_annots": {"ILSVRC2012_val_00000001.JPEG": {"correct": [wnid, ...], "unclear": [...], "wrong": [...]}},
     "problematic_images": {file: ...}, "imagenet_m": ["ILSVRC2012_val_....JPEG", ...]}   # the 68 Major images

read by the Shankar reader (relabel.data.readers.read_shankar: names outside val are skipped). Metrics, on the val
logits that val/ReaL/Shankar share:
* `top1` and `top1_unclear_classavg`: the two published multi-label variants on the updated labels (problematic
  images skipped; (a) top-1 in `correct`, plain mean; (b) top-1 in `correct | unclear`, per original class, then
  over classes: relabel.metrics.shankar_accuracy, as the `shankar` column computes them on the original file);
* `imagenet_m_acc` / `imagenet_m_err` / `imagenet_m_mistakes`: over the ImageNet-M images, top-1 in
  `correct | unclear` (their scoring: only a major mistake counts).

No mini analogue: the mini world's true label sets are already its ReaL sets (and Shankar's `correct`), so a mini
version would repeat those columns, and ImageNet-M is chosen by experts reviewing real models' major mistakes,
which the world has no counterpart of; the unit refuses at mini in one sentence (exit 1 in the CLIs).
"""
from __future__ import annotations

import json
from pathlib import Path

from relabel.data.readers import ShankarLabels, read_shankar, val_index
from relabel.evaluators.base import EvalContext, EvalError, EvalResult, hits_entry
from relabel.evaluators.shankar import strict_hits_entry
from relabel.evaluators.unit import DataCheck, Unit
from relabel.evaluators.val import val_logits
from relabel.metrics import shankar_accuracy

WHAT = "Vasudevan et al. label file"
KINDS = ("correct", "unclear", "wrong")


def read_vasudevan(path, classes: list[str]) -> ShankarLabels:
    """The updated labels with their ImageNet-M list; ValueError with one sentence (without the path) for a file
    that is not JSON in the Shankar schema, names a class outside `classes`, or lists no ImageNet-M images."""
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"is not JSON ({e.msg}, line {e.lineno})") from None
    if not isinstance(data, dict) or not isinstance(data.get("initial_annots"), dict):
        raise ValueError('is not in Shankar et al.\'s schema (an object with "initial_annots": {val file: '
                         '{"correct": [wnids], "unclear": [...], "wrong": [...]}})')
    for fname, ann in data["initial_annots"].items():
        if not isinstance(ann, dict) or not all(isinstance(ann.get(k, []), list) for k in KINDS):
            raise ValueError(f"has an entry for {fname} whose label sets are not lists")
    if not isinstance(data.get("imagenet_m", []), list):
        raise ValueError('has an "imagenet_m" that is not a list of val file names')
    try:
        ann = read_shankar(path, classes)
    except ValueError as e:  # its sentence names the path first: the caller's sentence does
        raise ValueError("in which " + str(e).split(": ", 1)[-1].rstrip(".")) from None
    if not ann.imagenet_m:
        raise ValueError("lists no \"imagenet_m\" images: it looks like Shankar et al.'s original file, not "
                         "Vasudevan et al.'s update (human_accuracy_v3.0.0.json of google-research/imagenet-mistakes)")
    if not ann.imagenet_m <= set(ann.correct):
        raise ValueError("lists ImageNet-M images that have no label sets under \"initial_annots\"")
    return ann


def evaluate_vasudevan(ctx: EvalContext) -> EvalResult:
    path = ctx.require(ctx.roots.vasudevan_json, "Vasudevan et al. label", "vasudevan", is_file=True)
    try:  # before the val pass: a bad file costs seconds, not an inference over val
        ann = read_vasudevan(path, list(ctx.roots.classes))
    except ValueError as e:
        raise EvalError(f"{WHAT} {path} {e}.") from None
    paths, labels, logits = val_logits(ctx)
    try:
        metrics = shankar_accuracy(logits, paths, labels, ann)
    except ValueError as e:
        raise EvalError(f"{WHAT} {path}: {e}") from None
    pred = dict(zip((val_index(p) for p in paths), logits.argmax(1).tolist()))  # as shankar_accuracy ranks
    at = {val_index(p): p for p in paths}
    major = [(at[i], pred[i] in ann.correct[i] | ann.unclear.get(i, set())) for i in sorted(ann.imagenet_m) if i in at]
    if len(major) < len(ann.imagenet_m):
        raise EvalError(f"{WHAT} {path} lists {len(ann.imagenet_m)} ImageNet-M images, {len(major)} of them in the "
                        "val folder; it must be the file of this val set (ImageNet's, by val file name).")
    acc = 100.0 * sum(h for _, h in major) / len(major)
    metrics.update(imagenet_m_acc=acc, imagenet_m_err=100.0 - acc, imagenet_m_mistakes=sum(not h for _, h in major),
                   n_imagenet_m=len(major))
    outcomes = {"top1": strict_hits_entry(paths, logits, ann, ctx, metrics["top1"]),
                "imagenet_m_acc": hits_entry([h for _, h in major], [p for p, _ in major], ctx.roots.val, acc)}
    return EvalResult(metrics, ctx.dataset("vasudevan-multilabel", "val", metrics["n_scored"], ctx.roots.val,
                                           labels=str(path)),
                      {**ctx.base_params(), "vasudevan_metrics": "top1=(a) correct, plain mean; top1_unclear_classavg"
                                                                 "=(b) correct|unclear, class mean; imagenet_m_acc: "
                                                                 "top-1 in correct|unclear over ImageNet-M"},
                      outcomes)


def check(name: str, chk: DataCheck) -> None:
    path = chk.need(chk.roots.vasudevan_json, "Vasudevan et al. label", "vasudevan", True)
    try:
        ann = read_vasudevan(path, list(chk.roots.classes))
    except ValueError as e:
        raise chk.wrong(path, WHAT, "vasudevan", str(e)) from None
    found = {val_index(p) for p in chk.val_paths}
    missing = sorted(ann.imagenet_m - found)
    if missing:
        raise chk.wrong(path, WHAT, "vasudevan", f"lists {len(missing)} ImageNet-M images that are not in val (e.g. "
                                                 f"ILSVRC2012_val_{missing[0]:08d})")
    if not found & set(ann.correct):
        raise chk.wrong(path, WHAT, "vasudevan", "covers none of the val images")


UNIT = Unit(
    suite="vasudevan", section="eval_real", evaluators={"vasudevan": evaluate_vasudevan},
    layout_key="vasudevan",
    layout="<vasudevan>/human_accuracy_v3.0.0.json: Shankar et al.'s JSON {\"initial_annots\", "
           "\"problematic_images\", \"imagenet_m\": [val files]} (docs/evaluators.md)",
    check=check, reads_val=lambda roots: True,
    full_folder="vasudevan/", full_tree=("vasudevan/human_accuracy_v3.0.0.json (optional)",),
    mini_refusal="Vasudevan et al.'s evaluation runs at --scale full only: the mini world's true label sets are "
                 "already its ReaL sets, so a mini analogue would repeat the ReaL column, and ImageNet-M's images "
                 "are chosen by experts from real models' major mistakes (docs/evaluators.md).",
    paper=False,
    headline={"vasudevan": (("top1", "top1_unclear_classavg", "imagenet_m_acc"), "top-1 (a) / (b) / ImageNet-M acc")},
)
