"""The mini world (a bundled miniature ImageNet/COCO generator) and the full-scale dataset readers.

Generate or reuse a world with :func:`ensure_world` (or ``python -m relabel.data --out DIR``); read any split,
mini or real, with the readers in :mod:`relabel.data.readers`; compute Fig. 2 crop statistics with
:func:`crop_iou_stats`.
"""
from .world_config import GENERATOR_VERSION, TEST_SETS_VERSION, WorldConfig, current_test_sets, make_config, world_name
from .stats import box_iou, crop_iou_stats, multilabel_fraction
from .world import build_world, ensure_world, load_stats, world_test_sets

__all__ = ["GENERATOR_VERSION", "TEST_SETS_VERSION", "WorldConfig", "make_config", "ensure_world", "build_world",
           "load_stats", "world_name", "current_test_sets", "world_test_sets", "box_iou", "crop_iou_stats",
           "multilabel_fraction"]
