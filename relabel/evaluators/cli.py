"""The command line shared by `python eval_real/run.py` and `python robustness/run.py`.

Both load one checkpoint, run the chosen suites from the evaluator registry, append one run record per evaluator
and print a summary table. Under `torchrun --standalone --nproc_per_node=N eval_real/run.py ...` each rank
evaluates its share of every test set (relabel.dist.BatchShard) and rank 0 prints and writes the records, with
the metrics and per-image outcomes one process would write. Errors a user can cause (missing dataset folder,
checkpoint of the wrong architecture or class count, unknown suite) end in one sentence on stderr and exit status
1 (2 for bad options).
"""
from __future__ import annotations

import argparse
import sys
import time
from fractions import Fraction
from pathlib import Path

import torch

from relabel import evaluators as E
from relabel import records as R
from relabel.checkpoint import CheckpointError, load_checkpoint
from relabel.dist import init_distributed, is_main
from relabel.records import runs_root

# Eval protocol when the checkpoint does not store one: mini images (48 px) are seen whole, as the pretraining
# experiments evaluate them; full scale is ImageNet's Resize 256 + CenterCrop 224.
DEFAULT_INPUT = {"mini": 48, "full": 224}
DEFAULT_CROP = {"mini": 1.0, "full": 0.875}
# Suffixes a checkpoint file name loses in its default experiment id (longest first); other dots stay in the name.
CKPT_SUFFIXES = (".pth.tar", ".safetensors", ".pth", ".pt", ".bin", ".ckpt", ".tar")
CKPT_PARENTS = 4  # folders naming a model.* file outside runs/<scale>/ (as deep as pretrain/<arch>/<row>/seed<k>)
# What the summary shows per evaluator: (metric keys, label), as each unit declares it.
HEADLINE = E.HEADLINE

EPILOG = f"""\
data:
  --scale mini (default) uses the mini world in <repo>/data/mini-v1-seed0, generated on first use (~2 min),
  or the world folder given by --data-root. --scale full reads the real datasets under --data-root:
{E.FULL_TREE}
  ReaL labels, the ImageNet-A class indices and the class order come with timm. Every file the chosen suites
  read is checked before the checkpoint is loaded.

records:
  one JSON line per evaluator is appended to runs/records/<scale>.jsonl ($RELABEL_RUNS moves runs/), under
  the experiment id ckpt/<checkpoint file name without its suffix> (rn50_relabel_78.9.pth: ckpt/rn50_relabel_78.9)
  unless --experiment is given; a model.* file, as training writes, is named by its folders instead: the path
  below runs/<scale>/ (runs/full/pretrain/resnet50/relabel/seed0/model.safetensors:
  ckpt/pretrain/resnet50/relabel/seed0), else its last {CKPT_PARENTS} folders.
"""


def _epsilon(text: str) -> float:
    try:
        value = float(Fraction(text))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"--epsilon expects a number such as 8/255 or 0.0314, got {text!r}")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"--epsilon is in [0, 1] pixel units (8/255 = 0.0314), got {value}")
    return value


def _c_images(text: str):
    if text == "all":
        return text
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"--c-images expects a positive number or 'all', got {text!r}")
    return int(text)


def _allowed_suites(suites: tuple[str, ...]) -> tuple[str, ...]:
    """Every suite of the CLI whose default suites are `suites`: those of the same section(s) (eval_real/run.py
    also runs vasudevan, which is not in its default)."""
    sections = {E.SECTION_OF[s] for s in suites}
    return tuple(s for s in E.SUITES if E.SECTION_OF[s] in sections)


def build_parser(prog: str, description: str, suites: tuple[str, ...], robustness: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description, epilog=EPILOG,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ckpt", required=True, metavar="PATH",
                   help="model checkpoint: a .safetensors written by this repo (knows its architecture) or a "
                        "PyTorch .pth state dict, e.g. the official ReLabel ResNet-50")
    p.add_argument("--arch", metavar="NAME", help="timm architecture (default: the one stored in the checkpoint; "
                                                  "ResNets are recognised in a .pth)")
    more = [s for s in _allowed_suites(suites) if s not in suites]
    p.add_argument("--suite", default=",".join(suites), metavar="LIST",
                   help=f"comma-separated benchmarks to run (default: all = {','.join(suites)}); "
                        + "; ".join(f"{s} = {', '.join(E.SUITES[s])}" for s in suites if E.SUITES[s] != (s,))
                        + (f"; beyond the paper, not in the default: {', '.join(more)} (full scale only)"
                           if more else ""))
    p.add_argument("--scale", choices=("mini", "full"), default="mini", help="mini world or real datasets")
    p.add_argument("--data-root", metavar="DIR", help="mini: a world folder; full: the folder holding the datasets")
    p.add_argument("--experiment", metavar="ID", help="experiment id in the records (default: ckpt/<file name "
                                                      "without its suffix>, or ckpt/<folders> for a model.* file)")
    p.add_argument("--seed", type=int, metavar="N", help="training seed recorded with the results (default: the "
                                                         "checkpoint's stored seed, else 0)")
    p.add_argument("--input-size", type=int, metavar="PX", help="eval crop size (default: stored in the checkpoint, "
                                                                "else 48 mini / 224 full)")
    p.add_argument("--crop-ratio", type=float, metavar="R",
                   help="resize to size/R, then centre crop (default: stored in the checkpoint, else 1.0 mini = "
                        "whole image / 0.875 full = Resize 256 + CenterCrop 224)")
    p.add_argument("--batch-size", type=int, default=128, metavar="N", help="images per forward (default 128)")
    p.add_argument("--workers", type=int, default=0, metavar="N", help="data-loading processes (default 0)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                   help="cpu or cuda[:i] (default: cuda when available)")
    p.add_argument("--records", metavar="FILE", help="append records here instead of runs/records/<scale>.jsonl")
    p.add_argument("--no-records", action="store_true", help="print results only, write no records")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    if robustness:
        g = p.add_argument_group("robustness options")
        g.add_argument("--epsilon", type=_epsilon, default=8 / 255, metavar="EPS",
                       help="FGSM step in [0,1] pixel units, e.g. 8/255 (default; the paper does not state it)")
        g.add_argument("--c-root", metavar="DIR",
                       help="pre-rendered ImageNet-C (<corruption>/<severity>/<class>/); default at --scale full: "
                            "<data-root>/imagenet-c when that folder exists, else generated on the fly from val with "
                            "imagecorruptions (always on the fly at --scale mini)")
        g.add_argument("--c-images", type=_c_images, metavar="N|all",
                       help="val images per corruption×severity (default: 1,000 at mini on the fly, else all)")
        g.add_argument("--c-seed", type=int, default=0, metavar="N",
                       help="seed of the ImageNet-C subset and noise (default 0)")
        g.add_argument("--c-corruptions", metavar="LIST", default=",".join(E.CORRUPTIONS),
                       help="comma-separated corruptions (default: the 15 of the benchmark)")
        g.add_argument("--c-severities", metavar="LIST", default="1,2,3,4,5", help="default 1,2,3,4,5")
    return p


def _fmt(v) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)


def headline(name: str, res: "E.EvalResult") -> tuple[str, str, str]:
    """(label, value, note) of an evaluator's summary line; the note says when a number is not the benchmark's
    (an mCE over a subset of the corruptions)."""
    keys, label = HEADLINE.get(name, HEADLINE["val"])
    value = " / ".join(_fmt(res.metrics[k]) for k in keys if k in res.metrics)
    partial = name == "imagenet-c" and "mce" in res.metrics and not res.params.get("c_mce_complete", True)
    return label, value, (res.params.get("c_mce_scope", "") if partial else "")


def summary_table(rows: list[tuple[str, "E.EvalResult", float]], title: str) -> str:
    lines = [title, f"{'evaluator':<22}{'images':>8}  {'metric':<28}{'value':>22}{'time':>9}"]
    for name, res, secs in rows:
        label, value, note = headline(name, res)
        lines.append(f"{name:<22}{res.dataset['size']:>8}  {label:<28}{value:>22}{secs:>8.1f}s"
                     + (f"  ({note})" if note else ""))
    return "\n".join(lines)


def default_experiment(ckpt: str | Path, scale: str) -> str:
    """The records' experiment id of a checkpoint: ckpt/<file name without its checkpoint suffix> (a version such
    as rn50_relabel_78.9 keeps its dots); a generic model.* (what training writes in every run's folder) is named
    by its folders: the path below runs/<scale>/, else its last CKPT_PARENTS folders."""
    path = Path(ckpt)
    name = path.name
    suffix = next((s for s in CKPT_SUFFIXES if name.lower().endswith(s) and len(name) > len(s)), "")
    name = name[:len(name) - len(suffix)]
    if name != "model":
        return f"ckpt/{name}"
    folder = path.resolve().parent
    runs_scale = runs_root().resolve() / scale  # $RELABEL_RUNS/<scale>
    if folder.is_relative_to(runs_scale) and folder != runs_scale:
        return f"ckpt/{folder.relative_to(runs_scale).as_posix()}"
    parts = folder.parts[1:][-CKPT_PARENTS:]  # without the root ('/')
    return "ckpt/" + "/".join(parts) if parts else "ckpt/model"


def main(argv: list[str] | None, *, prog: str, description: str, suites: tuple[str, ...],
         robustness: bool = False) -> int:
    args = build_parser(prog, description, suites, robustness).parse_args(argv)
    try:
        return _run(args, suites, robustness)
    except (E.EvalError, CheckpointError, FileNotFoundError, ValueError) as e:
        if is_main():  # every rank meets the same error: say it once
            print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        import torch.distributed as dist
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()


def _stored(extra: dict, train_cfg: dict, *keys):
    """The first of `keys` saved with the checkpoint (top level of its metadata, or its training config)."""
    for key in keys:
        for where in (extra, train_cfg):
            if where.get(key):
                return where[key]
    return None


def _run(args, suites, robustness) -> int:
    words = [s.strip() for s in args.suite.split(",") if s.strip()]
    runs = _allowed_suites(suites)
    allowed = set(runs) | {n for s in runs for n in E.SUITES[s]}
    wrong = [w for w in words if w not in allowed]
    if wrong or not words:
        raise ValueError(f"unknown suite {wrong or words}; this script runs {', '.join(runs)}")
    names = E.names_for_suites(words)
    for name in names:  # a unit with no data at this scale says so before a checkpoint loads or a world builds
        E.UNIT_OF[name].refuse_at(args.scale)
    ck = load_checkpoint(args.ckpt, args.arch)  # the user's file first: a bad one is reported before any world builds
    roots = E.DataRoots.for_scale(args.scale, args.data_root)
    options = {}
    if robustness:
        from dataclasses import replace
        if args.c_root:
            roots = replace(roots, imagenet_c=Path(args.c_root))
        c_images = {None: "default", "all": None}.get(args.c_images, args.c_images)
        options = dict(fgsm_epsilon=args.epsilon, c_images=c_images, c_seed=args.c_seed,
                       c_corruptions=[c.strip() for c in args.c_corruptions.split(",") if c.strip()],
                       c_severities=[int(s) for s in args.c_severities.split(",") if s.strip()])
    E.check_data(names, roots, **options)
    if ck.num_classes != len(roots.classes):
        raise CheckpointError(f"{args.ckpt} has a {ck.num_classes}-class classifier but {len(roots.classes)} classes "
                              f"were expected (the {roots.name} evaluation sets); use a checkpoint trained on this "
                              "dataset (or the other --scale).")
    info = init_distributed()  # under torchrun every rank evaluates its shard of each test set; rank 0 writes
    device = f"cuda:{info.local_rank}" if info.world > 1 and args.device == "cuda" else args.device
    say = print if info.main else (lambda *a, **k: None)
    extra = ck.extra if isinstance(ck.extra, dict) else {}
    train_cfg = extra.get("config", {}) if isinstance(extra.get("config"), dict) else {}
    input_size = args.input_size or _stored(extra, train_cfg, "eval_input_size", "eval_input", "input_size") \
        or DEFAULT_INPUT[args.scale]
    crop_ratio = args.crop_ratio or _stored(extra, train_cfg, "eval_crop_ratio") or DEFAULT_CROP[args.scale]
    seed = args.seed if args.seed is not None else int(extra.get("seed", train_cfg.get("seed", 0)))
    experiment = args.experiment or default_experiment(args.ckpt, args.scale)
    records_path = Path(args.records) if args.records else R.default_records_path(args.scale)
    config = {"checkpoint": str(Path(args.ckpt).resolve()), "checkpoint_sha256": ck.sha256[:16],
              "checkpoint_format": ck.format, "arch": ck.arch, "model_kwargs": ck.model_kwargs,
              "num_classes": ck.num_classes, **({"test_sets": roots.test_sets} if roots.test_sets else {})}
    say(f"{experiment}: timm {ck.arch} ({ck.num_classes} classes) on {roots.name} [{args.scale}], "
        f"input {input_size} px, crop ratio {crop_ratio}, device {device}"
        f"{f', {info.world} ranks' if info.world > 1 else ''}")
    cache, rows = {}, []
    for name in names:
        t = time.perf_counter()
        res = E.evaluate(name, ck.model, roots, input_size=input_size, crop_ratio=crop_ratio,
                         device=device, batch_size=args.batch_size, workers=args.workers,
                         progress=not args.no_progress, cache=cache, **options)
        secs = time.perf_counter() - t
        rows.append((name, res, secs))
        label, value, note = headline(name, res)
        say(f"  {name}: {label} = {value} ({secs:.1f} s){f'; {note}' if note else ''}", flush=True)
        if not args.no_records and info.main:
            R.append(records_path, R.make_record(
                experiment=experiment, evaluator=name, metrics=res.metrics, config={**config, **res.params},
                scale=args.scale, seed=seed, dataset=res.dataset, wall_time_s=secs,
                cells=(), extra={"checkpoint_meta": extra} if extra else None, outcomes=res.outcomes))
    say()
    say(summary_table(rows, f"Summary — {experiment} on {roots.name} ({args.scale}), metrics in %"))
    if not args.no_records:
        say(f"records: {len(rows)} appended to {records_path} (experiment '{experiment}', seed {seed})")
    return 0
