"""Robustness evaluation (Table 7): FGSM, ImageNet-A, ImageNet-C, background challenge.

`python robustness/run.py --ckpt PATH [--suite fgsm,a,c,bgc] [--epsilon 8/255] [--c-images N] [--c-root DIR]`;
the evaluators themselves are units in the core (`relabel/evaluators/<name>.py`: fgsm, imagenet_a, imagenet_c,
bgc), so pretraining experiments call the same code without importing this section.
"""
