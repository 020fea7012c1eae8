"""`python -m transfer`: run one Table 8 grid or one Table 9 detector on any backbone checkpoint of ours.

The make targets (`make table8`, `make table9`) run the registered experiments on the two pretrained backbones
and write records; this entry point is for trying another checkpoint by hand and prints the metrics as JSON.

    python -m transfer finegrained --task dtd --backbone runs/mini/pretrain/resnet50/relabel/seed0/model.safetensors
    python -m transfer detection --detector mask_rcnn --backbone ckpt.safetensors --set max_iters=200
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from relabel.checkpoint import CheckpointError
from relabel.configs import add_set_argument, parse_overrides  # its ConfigError is a ValueError: printed by main
from relabel.stamped import StaleWorkError


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m transfer", description=__doc__.split("\n\n")[0])
    ap.add_argument("stage", choices=("finegrained", "detection"))
    ap.add_argument("--backbone", required=True, help="model.safetensors written by a pretraining experiment")
    ap.add_argument("--task", default="dtd", help="finegrained: food101, cars, dtd, aircraft or pets")
    ap.add_argument("--detector", default="faster_rcnn", help="detection: faster_rcnn or mask_rcnn")
    ap.add_argument("--scale", default="mini", choices=("mini", "full"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="runs/transfer-cli", help="work folder (checkpoints, logs)")
    add_set_argument(ap, "the stage's config (FineGrainedConfig / DetectionConfig)", "--set max_steps=20")
    a = ap.parse_args(argv)
    out = Path(a.out) / a.stage / (a.task if a.stage == "finegrained" else a.detector) / f"seed{a.seed}"
    try:
        if a.stage == "finegrained":
            from transfer.backbone import open_backbone
            from transfer.finegrained import get_config, run_grid
            cfg = get_config(a.scale, a.task, **parse_overrides(a.set))
            res = run_grid(cfg, open_backbone(a.backbone, cfg.backbone_arch), out, a.seed)
            metrics = {k: res[k] for k in ("top1_best_on_test", "top1_selected_on_holdout", "selected_point")}
        else:
            from transfer.detection import get_config, run_detection
            cfg = get_config(a.scale, a.detector, **parse_overrides(a.set))
            metrics = run_detection(cfg, a.backbone, out, a.seed).metrics
    except (CheckpointError, FileNotFoundError, ValueError, StaleWorkError, FloatingPointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(metrics, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
