"""Single- and multi-label evaluation (Tables 3, A1): ImageNet val, ImageNetV2 ×3, ReaL, Shankar et al."""
