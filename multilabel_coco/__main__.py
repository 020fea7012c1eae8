"""`python -m multilabel_coco`: train and score one Table 10 cell by hand (COCO multi-label, BCE) and print its mAP.

`make table10` runs every cell through the launcher and writes records; this entry point is for trying a cell
with other settings. It writes no record. Examples:

    python -m multilabel_coco --arch resnet50 --row oracle --seed 0
    python -m multilabel_coco --row oracle --set train.relabel_variant=ml_fraction --out runs/ml-cli
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _overrides(items) -> tuple[dict, dict]:
    """(config overrides, TrainConfig overrides) from KEY=VALUE items; 'train.<key>' goes to the recipe."""
    from relabel.configs import parse_overrides  # its ConfigError (a ValueError) is printed by main's handler
    over = parse_overrides(items)
    top = {k: v for k, v in over.items() if not k.startswith("train.")}
    train = {k.removeprefix("train."): v for k, v in over.items() if k.startswith("train.")}
    return top, train


def main(argv=None) -> int:
    from multilabel_coco.config import ARCHS, ROWS, get_config
    from relabel.configs import add_set_argument
    ap = argparse.ArgumentParser(prog="python -m multilabel_coco", description=__doc__.split("\n\n")[0])
    ap.add_argument("--arch", default="resnet50", choices=ARCHS)
    ap.add_argument("--row", default="baseline", choices=tuple(ROWS),
                    help="baseline = multi-hot labels; machine / oracle = LabelPooling of those label maps")
    ap.add_argument("--scale", default="mini", choices=("mini", "full"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/multilabel-cli", help="work folder (checkpoints)")
    add_set_argument(ap, "the run's MultiLabelConfig", "--set map_grid=(12,12) --set train.lr=1e-3")
    a = ap.parse_args(argv)
    from relabel.checkpoint import CheckpointError
    from relabel.store import LabelStoreError
    try:
        top, train = _overrides(a.set)
        cfg = get_config(a.scale, a.arch, a.row, a.seed, **top)
        if train:
            cfg = cfg.replace(train=cfg.train.replace(**train))
        from multilabel_coco.pipeline import run
        res = run(cfg, Path(a.out) / a.scale / a.arch / a.row / f"seed{a.seed}")
    except (CheckpointError, LabelStoreError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    m = res["metrics"]
    print(json.dumps({"map": m["map"], "ap_per_class": m["ap"], "train_wall_s": res["train_wall_s"],
                      "label_maps": res["maps"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
