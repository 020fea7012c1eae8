"""Robustness evaluation (Table 7): FGSM, ImageNet-A, ImageNet-C, background challenge."""
