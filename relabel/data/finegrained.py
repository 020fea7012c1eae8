"""Write five small fine-grained transfer tasks in the spirit of Table 8 (Food-101, Cars, DTD, Aircraft, Pets).

Layout: ``finegrained/<task>/{train,val,test}/<class>/<task>_<split>_<6-digit n>.png``. Splits draw glyphs
from disjoint pools (train: fit, val: heldout, test: test) and textures from disjoint vertical strips of each
photograph, so no test image shares content with a training image.

* ``food``: a "dish" is an unordered pair of two digits from 0-4 on a photo (10 classes).
* ``cars``: one make, several models: digits 2 and 7 by handwriting style, slant (left/right) x stroke weight
  (thin/bold) relative to the digit's median (8 classes).
* ``dtd``: texture patches cut from 8 photographs (8 classes).
* ``aircraft``: one shape family, variants by geometry: a digit (2, 3, 4, 5 or 7) at one of 8 orientations.
* ``pets``: species x breed: digits 3, 5, 8 x ink pattern (dots, solid, stripes) (9 classes).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .world_config import WorldConfig
from .formats import save_png, split_rng
from .scenes import finish_scene, glyph_alpha, ink_colour, paint, pick_background_photo, sample_background, \
    sample_scene
from .sources import TEXTURES, Sources, load_texture_photos

__all__ = ["FINEGRAINED_TASKS", "write_finegrained", "task_classes"]

FINEGRAINED_TASKS = ("food", "cars", "dtd", "aircraft", "pets")
_POOLS = {"train": "fit", "val": "heldout", "test": "test"}
_STRIPS = {"train": (0.0, 0.6), "val": (0.6, 0.8), "test": (0.8, 1.0)}
_FOOD = [(a, b) for a in range(5) for b in range(a + 1, 5)]
_CARS = [(d, s, w) for d in (2, 7) for s in ("left", "right") for w in ("bold", "thin")]
_AIRCRAFT_ANGLES = tuple(range(0, 360, 45))
_PETS = [(d, p) for d in (3, 5, 8) for p in ("dots", "solid", "stripes")]


def task_classes(task: str) -> list[str]:
    """Class folder names of one task, in label order (they sort as strings in the same order)."""
    names = _task_classes(task)
    if names != sorted(names):  # readers take the sorted folder position as the label
        raise AssertionError(f"class folders of {task} must sort in label order: {names}")
    return names


def _task_classes(task: str) -> list[str]:
    if task == "food":
        return [f"pair{a}{b}" for a, b in _FOOD]
    if task == "cars":
        return [f"d{d}_{s}_{w}" for d, s, w in _CARS]
    if task == "dtd":
        return [f"t{k}_{name.split('.')[0]}" for k, name in enumerate(TEXTURES)]
    if task == "aircraft":
        return [f"rot{a:03d}" for a in _AIRCRAFT_ANGLES]
    if task == "pets":
        return [f"d{d}_{p}" for d, p in _PETS]
    raise ValueError(f"unknown fine-grained task {task!r}; choose one of {FINEGRAINED_TASKS}.")


def write_finegrained(dest: Path, seed: int, cfg: WorldConfig, sources: Sources) -> dict:
    """Write all five tasks; return image counts per task and split."""
    per_class = {"train": cfg.n_finegrained_train_per_class, "val": cfg.n_finegrained_val_per_class,
                 "test": cfg.n_finegrained_test_per_class}
    styles = _glyph_styles(sources)
    counts: dict = {}
    for task in FINEGRAINED_TASKS:
        names = task_classes(task)
        counts[task] = {}
        for split, n in per_class.items():
            k = 0
            for cls, name in enumerate(names):
                for j in range(n):
                    k += 1
                    rng = split_rng(seed, f"finegrained/{task}/{split}", k)
                    image = _render(task, cls, split, rng, cfg, sources, styles)
                    save_png(dest / "finegrained" / task / split / name / f"{task}_{split}_{k:06d}.png", image)
            counts[task][split] = k
    return counts


def _render(task: str, cls: int, split: str, rng: np.random.Generator, cfg: WorldConfig, sources: Sources,
            styles: dict) -> np.ndarray:
    s = cfg.image_size
    pool = _POOLS[split]
    if task == "food":
        a, b = _FOOD[cls]
        params = cfg.scene_params()
        return sample_scene(rng, params, sources, pool, a, classes=[a, b], scale_range=(0.35, 0.6)).image
    if task == "dtd":
        return _texture_patch(rng, TEXTURES[cls], split, s)
    if task == "cars":
        digit, slant, weight = _CARS[cls]
        glyphs = styles[(pool, digit, slant, weight)]
        return _single_glyph(rng, sources, glyphs[int(rng.integers(len(glyphs)))], digit, s, angle=0.0)
    if task == "aircraft":
        digit = (2, 3, 4, 5, 7)[int(rng.integers(5))]
        glyphs = sources.glyphs_of(pool, digit)
        angle = _AIRCRAFT_ANGLES[cls] + float(rng.uniform(-5, 5))
        return _single_glyph(rng, sources, glyphs[int(rng.integers(len(glyphs)))], digit, s, angle=angle)
    digit, pattern = _PETS[cls]
    glyphs = sources.glyphs_of(pool, digit)
    return _single_glyph(rng, sources, glyphs[int(rng.integers(len(glyphs)))], digit, s,
                         angle=float(rng.uniform(-15, 15)), pattern=pattern)


def _single_glyph(rng: np.random.Generator, sources: Sources, glyph: np.ndarray, digit: int, s: int,
                  angle: float, pattern: str = "solid") -> np.ndarray:
    """One centred digit (55-80% of the frame) on a random photo crop, optionally with a patterned ink."""
    h = int(round(s * rng.uniform(0.55, 0.8)))
    alpha = glyph_alpha(glyph, h, int(round(h * rng.uniform(0.9, 1.1))), angle)
    canvas = sample_background(rng, sources, pick_background_photo(rng, digit, 0.0), s, s)
    ph, pw = alpha.shape
    y0 = (s - ph) // 2 + int(rng.integers(-3, 4))
    x0 = (s - pw) // 2 + int(rng.integers(-3, 4))
    lum = float(canvas.mean())
    ink = ink_colour(rng, lum)
    if pattern != "solid":
        other = ink_colour(rng, 1.0 - lum)  # the pattern's second colour contrasts with the first
        yy, xx = np.mgrid[0:ph, 0:pw]
        on = ((xx + yy) // 2) % 2 == 0 if pattern == "stripes" else (yy % 4 < 2) & (xx % 4 < 2)
        ink = np.where(on[:, :, None], ink, other).astype(np.float32)
    layer, full = paint(canvas, alpha, y0, x0, ink)
    return finish_scene(canvas, [digit], [layer], [full], digit).image


def _texture_patch(rng: np.random.Generator, photo: str, split: str, s: int) -> np.ndarray:
    src = load_texture_photos()[photo]
    H, W = src.shape[:2]
    lo, hi = _STRIPS[split]
    x_lo, x_hi = int(lo * W), int(hi * W)
    side = int(rng.integers(max(8, s * 2 // 3), min(x_hi - x_lo, H, 2 * s) + 1))
    y = int(rng.integers(0, H - side + 1))
    x = int(rng.integers(x_lo, x_hi - side + 1))
    patch = Image.fromarray((src[y:y + side, x:x + side] * 255).astype(np.uint8))
    patch = np.asarray(patch.resize((s, s), Image.Resampling.BILINEAR, reducing_gap=None))
    return np.ascontiguousarray(np.rot90(patch, int(rng.integers(4))))


def _glyph_styles(sources: Sources) -> dict:
    """Group glyphs by (pool, digit, slant, weight); thresholds are the digit's medians over all pools."""
    out = {}
    for digit in sorted({d for d, _, _ in _CARS}):
        all_glyphs = np.concatenate([sources.glyphs_of(p, digit) for p in _POOLS.values()])
        slant_med, weight_med = np.median(_slant(all_glyphs)), np.median(all_glyphs.sum(axis=(1, 2)))
        for pool in _POOLS.values():
            g = sources.glyphs_of(pool, digit)
            slants, weights = _slant(g), g.sum(axis=(1, 2))
            for slant in ("left", "right"):
                for weight in ("thin", "bold"):
                    keep = ((slants < slant_med) == (slant == "left")) & ((weights < weight_med) == (weight == "thin"))
                    out[(pool, digit, slant, weight)] = g[keep] if keep.any() else g
    return out


def _slant(glyphs: np.ndarray) -> np.ndarray:
    """How far the ink's column moves per row (regression slope of x on y): > 0 leans left-to-bottom-right."""
    yy, xx = np.mgrid[0:8, 0:8].astype(np.float64)
    m = glyphs.sum(axis=(1, 2))
    my = (glyphs * yy).sum(axis=(1, 2)) / m
    mx = (glyphs * xx).sum(axis=(1, 2)) / m
    cov = (glyphs * (yy - my[:, None, None]) * (xx - mx[:, None, None])).sum(axis=(1, 2))
    var = (glyphs * (yy - my[:, None, None]) ** 2).sum(axis=(1, 2))
    return cov / var
