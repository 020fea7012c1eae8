"""Evaluate a checkpoint on ImageNet val, ImageNetV2 (3 variants), ImageNet-ReaL and Shankar et al. (Tables 3, A1).

    python eval_real/run.py --ckpt runs/mini/pretrain/resnet50/relabel/seed0/model.safetensors
    python eval_real/run.py --ckpt relabel_resnet50.pth --scale full --data-root /data --suite val,real
"""
import sys
from pathlib import Path

# `python <folder>/run.py` puts <folder> on sys.path, not the checkout: put the checkout first, so this script
# runs (and writes records into) the checkout it sits in, never another one an editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relabel.evaluators import EVAL_REAL_SUITES  # noqa: E402
from relabel.evaluators.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="python eval_real/run.py", description=__doc__, suites=EVAL_REAL_SUITES))
