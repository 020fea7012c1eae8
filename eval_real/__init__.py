"""Single- and multi-label evaluation (Tables 3, A1): ImageNet val, ImageNetV2 ×3, ReaL, Shankar et al.

`python eval_real/run.py --ckpt PATH [--suite val,v2,real,shankar] [--scale mini|full] [--data-root DIR]`
(`--suite vasudevan`: Vasudevan et al.'s multi-label val and ImageNet-M, full scale only). The evaluators
themselves are units in the core (`relabel/evaluators/<name>.py`: val, v2, real, shankar, vasudevan), so
pretraining experiments call the same code without importing this section.
"""
