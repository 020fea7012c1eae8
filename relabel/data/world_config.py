"""The knobs of the mini world: split sizes, label rule, visibility threshold and the calibrated scene statistics.

The defaults are the calibrated world: ~16% of scored val images carry more than one class (ImageNet-ReaL) and
RandomResizedCrop(0.08-1) crops have no overlap with the labelled class's boxes 8% of the time and IoU > 0.5
23.5% of the time (paper Fig. 2). ``difficulty`` moves all scene statistics together away from that point.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

__all__ = ["GENERATOR_VERSION", "TEST_SETS_VERSION", "TRAINING_SPLITS", "WorldConfig", "SceneParams", "make_config",
           "world_name", "current_test_sets"]

# Two versions, one per side of the world (a world's world.json holds both; `ensure_world` rebuilds a cached world
# whose world.json differs from the code's):
# - GENERATOR_VERSION: bump whenever a byte of a split that training reads could change (TRAINING_SPLITS, for a given
#   seed and config). It names the world (`mini-v1-seed0`), and that name is the identity every training artifact
#   carries (the published annotator's 'world', label-map stores, checkpoints), so a bump retrains everything.
# - TEST_SETS_VERSION: bump whenever a byte of a test split could change and no training split does (a test split's
#   size or generator, or an evaluation default that picks from them: the mini ImageNet-C subset's size in
#   relabel/evaluators/roots.py). The world keeps its name and its training artifacts; evaluation records carry
#   `current_test_sets` (config['test_sets']), so every record evaluated on the earlier test sets becomes stale
#   (relabel.launch.Experiment.is_current). v1: val 1,500, V2 300 per variant, ImageNet-A 200, COCO val 300,
#   fine-grained test 16 per class, ImageNet-C 300 per cell; v2 (issue 25, docs/statistics-plan.md): the sizes below.
GENERATOR_VERSION = 1
TEST_SETS_VERSION = 2
# The splits a training run, the annotator or a label-map store reads (tests/test_miniworld.py checks their bytes
# against tests/fixtures/training_splits.json): they must not change without a GENERATOR_VERSION bump.
TRAINING_SPLITS = ("train", "extra", "coco/train", "coco/annotations/instances_train.json",
                   *(f"finegrained/{t}/{s}" for t in ("food", "cars", "dtd", "aircraft", "pets")
                     for s in ("train", "val")))
LABEL_RULES = ("random", "largest")


@dataclass(frozen=True)
class WorldConfig:
    """Every knob of one mini world. Sizes are image counts (``*_per_class`` per class)."""
    # 48 px: the prototype's size; a digit of 14-40 px stays legible, and a tiny ResNet trains on 5k such
    # images for 20 epochs on 2 CPU cores in minutes (64 px would cost ~1.8x per epoch).
    image_size: int = 48
    n_train: int = 5000
    n_extra: int = 10000
    # Test splits (TEST_SETS_VERSION 2): large enough that one accuracy near 50% has a binomial SE of ≤ 0.5 points
    # (val, each V2 variant, ImageNet-A: ≥ 10,000), or what evaluation time allows (docs/statistics-plan.md).
    n_val: int = 20000
    n_v2_per_class: int = 1000
    n_imagenet_a: int = 10000
    n_bgc_per_class: int = 50
    n_coco_train: int = 600
    n_coco_val: int = 2000
    n_finegrained_train_per_class: int = 24
    n_finegrained_val_per_class: int = 8
    # 125 per class: 1,000-1,250 test images per task (8-10 classes), the plan's 1,000 as the floor
    n_finegrained_test_per_class: int = 125
    # The image is "collected for" one of its objects: drawn at random (default) or the largest visible one.
    label_rule: str = "random"
    # An object belongs to the true label set when at least this fraction of it is visible.
    visibility_threshold: float = 0.5
    # 0 = calibrated; > 0 = smaller objects, more clutter and more classes per image; < 0 = easier.
    difficulty: float = 0.0
    # Probability that a scene's background is its labelled class's habitat photograph.
    bg_class_corr: float = 0.5
    # Scene statistics at difficulty 0, tuned so the default world meets the targets above (measured values are
    # in the world's stats.json; the targets and the Fig. 2 protocol are in stats.py).
    # Objects per scene (1, 2, 3); extra objects repeat the labelled class with ``same_class_prob`` (ImageNet
    # photos often hold several instances of their class), so many scenes hold several objects while only
    # ~16% hold several classes.
    n_objects_probs: tuple[float, ...] = (0.55, 0.30, 0.15)
    same_class_prob: float = 0.62
    # Object height as a fraction of the image side, log-scaled, drawn from Beta(shape, shape): the spread from
    # small far-away digits (crops miss them: Fig. 2's 8%) to frame-filling close-ups (IoU > 0.5: 23.5%).
    object_scale: tuple[float, float] = (0.20, 1.50)
    object_scale_shape: float = 0.55
    # The labelled object must keep at least this visible fraction (a query photo shows what it was found for).
    min_label_visible: float = 0.2

    def __post_init__(self):
        if self.label_rule not in LABEL_RULES:
            raise ValueError(f"label_rule must be one of {LABEL_RULES}, got {self.label_rule!r}.")
        if not 0.0 < self.visibility_threshold <= 1.0:
            raise ValueError(f"visibility_threshold must be in (0, 1], got {self.visibility_threshold}.")
        if not 16 <= self.image_size <= 512:
            raise ValueError(f"image_size must be between 16 and 512 pixels, got {self.image_size}.")
        if abs(sum(self.n_objects_probs) - 1.0) > 1e-6 or min(self.n_objects_probs) < 0:
            raise ValueError(f"n_objects_probs must be non-negative and sum to 1, got {self.n_objects_probs}.")
        lo, hi = self.object_scale
        if not 0.05 <= lo <= hi <= 1.5:
            raise ValueError(f"object_scale must satisfy 0.05 <= lo <= hi <= 1.5, got {self.object_scale}.")
        for f in dataclasses.fields(self):
            if f.name.startswith("n_") and f.type == "int" and getattr(self, f.name) < 0:
                raise ValueError(f"{f.name} must be >= 0, got {getattr(self, f.name)}.")

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def is_default(self) -> bool:
        return self == WorldConfig()

    def short_hash(self) -> str:
        """Eight hex digits identifying the knob values (part of the cache key of a non-default world)."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha1(text.encode()).hexdigest()[:8]

    def scene_params(self, extra_difficulty: float = 0.0) -> "SceneParams":
        """Scene statistics after applying ``difficulty`` (plus a split-specific shift, e.g. V2's re-collection)."""
        d = self.difficulty + extra_difficulty
        shrink = 0.8 ** d
        probs = list(self.n_objects_probs)
        probs[0] *= 0.6 ** d  # harder worlds have fewer single-object images
        total = sum(probs)
        return SceneParams(
            size=self.image_size,
            n_objects_probs=tuple(p / total for p in probs),
            same_class_prob=min(1.0, self.same_class_prob * 0.8 ** d),
            object_scale=(self.object_scale[0] * shrink, self.object_scale[1] * shrink),
            object_scale_shape=self.object_scale_shape,
            bg_class_corr=self.bg_class_corr,
            min_label_visible=self.min_label_visible,
            label_rule=self.label_rule,
        )


@dataclass(frozen=True)
class SceneParams:
    """The statistics one scene sampler draws from (derived from a WorldConfig, never set by hand)."""
    size: int
    n_objects_probs: tuple[float, ...]
    same_class_prob: float
    object_scale: tuple[float, float]
    object_scale_shape: float
    bg_class_corr: float
    min_label_visible: float
    label_rule: str


def make_config(**knobs) -> WorldConfig:
    """Build a WorldConfig, turning a misspelt knob into one clear error instead of a TypeError."""
    names = {f.name for f in dataclasses.fields(WorldConfig)}
    unknown = sorted(set(knobs) - names)
    if unknown:
        raise ValueError(f"unknown mini-world knob(s) {unknown}; valid knobs are {sorted(names)}.")
    knobs = {k: tuple(v) if isinstance(v, list) else v for k, v in knobs.items()}
    return WorldConfig(**knobs)


def world_name(seed: int, cfg: WorldConfig) -> str:
    """The world's folder name, which every training artifact carries as its world's identity: 'mini-v1-seed0'
    (plus the knob hash of a non-default world)."""
    name = f"mini-v{GENERATOR_VERSION}-seed{seed}"
    return name if cfg.is_default() else f"{name}-{cfg.short_hash()}"


def current_test_sets(seed: int, cfg: WorldConfig) -> str:
    """The identity of the world's test splits as the code writes them now ('mini-v1-seed0/test-v2'): what an
    evaluation record must carry in config['test_sets'] to be current (relabel.launch.on_current_test_sets)."""
    return f"{world_name(seed, cfg)}/test-v{TEST_SETS_VERSION}"
