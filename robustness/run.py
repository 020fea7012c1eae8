"""Evaluate a checkpoint's robustness: FGSM, ImageNet-A, ImageNet-C and the background challenge (Table 7).

    python robustness/run.py --ckpt runs/mini/pretrain/resnet50/relabel/seed0/model.safetensors
    python robustness/run.py --ckpt relabel_resnet50.pth --scale full --data-root /data --suite a,bgc
"""
import sys
from pathlib import Path

# `python <folder>/run.py` puts <folder> on sys.path, not the checkout: put the checkout first, so this script
# runs (and writes records into) the checkout it sits in, never another one an editable install points at.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from relabel.evaluators import ROBUSTNESS_SUITES  # noqa: E402
from relabel.evaluators.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="python robustness/run.py", description=__doc__, suites=ROBUSTNESS_SUITES,
                  robustness=True))
