"""Evaluate a checkpoint's robustness: FGSM, ImageNet-A, ImageNet-C and the background challenge (Table 7).

    python robustness/run.py --ckpt runs/mini/pretrain/resnet50/relabel/seed0/model.safetensors
    python robustness/run.py --ckpt relabel_resnet50.pth --scale full --data-root /data --suite a,bgc
"""
import sys

from relabel.evaluators import ROBUSTNESS_SUITES
from relabel.evaluators.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:], prog="python robustness/run.py", description=__doc__, suites=ROBUSTNESS_SUITES,
                  robustness=True))
