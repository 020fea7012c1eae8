"""Single- and multi-label evaluation (Tables 3, A1): ImageNet val, ImageNetV2 ×3, ReaL, Shankar et al.

`python eval_real/run.py --ckpt PATH [--suite val,v2,real,shankar] [--scale mini|full] [--data-root DIR]`; the
evaluators themselves live in the core (`relabel.evaluators`: val, v2-top-images, v2-matched-frequency,
v2-threshold0.7, real, shankar), so pretraining experiments call the same code.
"""
