"""Compose one mini-world scene: coloured handwritten digits alpha-composited onto a crop of a real photograph.

Each scene records, per object in paste order, its class, its visible mask (pixels where it is the topmost
object with alpha > 0.5, so later objects occlude earlier ones), the tight box of that mask and the visible
fraction of the object's full (amodal, frame-truncated) mask. Boxes are ``(x1, y1, x2, y2)`` in pixel edges:
``x`` runs along the width, and a box covering columns ``j..k`` has ``x1 = j``, ``x2 = k + 1``.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .world_config import SceneParams
from .sources import HABITATS, PHOTOS, Sources

__all__ = ["SceneObject", "Scene", "glyph_alpha", "sample_background", "paint", "finish_scene",
           "sample_scene", "true_labels", "unclear_labels", "mask_box"]


@dataclass
class SceneObject:
    cls: int
    mask: np.ndarray  # bool [H, W], visible pixels
    visible: float  # visible pixels / full (amodal) pixels
    box: tuple[int, int, int, int] | None = None  # tight box of ``mask``; None when nothing is visible

    @property
    def area(self) -> int:
        return int(self.mask.sum())


@dataclass
class Scene:
    image: np.ndarray  # uint8 [H, W, 3]
    objects: list[SceneObject]
    label: int  # the single label the image was "collected for"

    def boxes_of(self, cls: int) -> list[tuple[int, int, int, int]]:
        return [o.box for o in self.objects if o.cls == cls and o.box is not None]


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight ``(x1, y1, x2, y2)`` pixel-edge box of a boolean mask, or None if it is empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def glyph_alpha(glyph: np.ndarray, height: int, width: int, angle: float = 0.0) -> np.ndarray:
    """Upscale an 8x8 digit to ``height x width`` and rotate it; return a crisp alpha matte in [0, 1]."""
    im = Image.fromarray(np.ascontiguousarray(glyph, dtype=np.float32))
    im = im.resize((max(width, 1), max(height, 1)), Image.Resampling.BICUBIC)
    if angle:
        im = im.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    # The upscaled 8x8 strokes are soft blobs; a steep ramp turns them into ink with a one-pixel soft edge.
    return np.clip((np.asarray(im, dtype=np.float32) - 0.35) / 0.25, 0.0, 1.0)


def sample_background(rng: np.random.Generator, sources: Sources, photo: str, height: int, width: int) -> np.ndarray:
    """A random crop of ``photo`` with the target aspect ratio, resized to ``height x width`` (float RGB)."""
    src = sources.photos[photo]
    ph, pw = src.shape[:2]
    side = rng.uniform(0.3, 1.0) * min(ph / height, pw / width)
    ch, cw = max(2, int(side * height)), max(2, int(side * width))
    y, x = int(rng.integers(0, ph - ch + 1)), int(rng.integers(0, pw - cw + 1))
    crop = Image.fromarray((src[y:y + ch, x:x + cw] * 255).astype(np.uint8))
    crop = crop.resize((width, height), Image.Resampling.BILINEAR, reducing_gap=None)
    out = np.asarray(crop, dtype=np.float32) / 255.0
    return out[:, ::-1] if rng.random() < 0.5 else out


def pick_background_photo(rng: np.random.Generator, cls: int, bg_class_corr: float) -> str:
    return HABITATS[cls] if rng.random() < bg_class_corr else PHOTOS[int(rng.integers(len(PHOTOS)))]


def ink_colour(rng: np.random.Generator, local_luminance: float) -> np.ndarray:
    """A saturated colour whose brightness contrasts with the background under the object."""
    value = rng.uniform(0.05, 0.35) if local_luminance > 0.5 else rng.uniform(0.7, 1.0)
    return np.array(colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.5, 1.0), value), dtype=np.float32)


def paint(canvas: np.ndarray, alpha_patch: np.ndarray, y0: int, x0: int, ink) -> tuple[np.ndarray, int]:
    """Alpha-composite a patch at (y0, x0) in place (it may hang over the frame); return its canvas alpha layer
    and its full (amodal) pixel count, i.e. alpha > 0.5 including pixels that fall outside the frame."""
    H, W = canvas.shape[:2]
    ph, pw = alpha_patch.shape
    layer = np.zeros((H, W), np.float32)
    ys, xs = max(0, y0), max(0, x0)
    ye, xe = min(H, y0 + ph), min(W, x0 + pw)
    if ye > ys and xe > xs:
        layer[ys:ye, xs:xe] = alpha_patch[ys - y0:ye - y0, xs - x0:xe - x0]
        a = layer[ys:ye, xs:xe, None]
        ink_region = ink if np.ndim(ink) == 1 else ink[ys - y0:ye - y0, xs - x0:xe - x0]
        canvas[ys:ye, xs:xe] = canvas[ys:ye, xs:xe] * (1.0 - a) + ink_region * a
    return layer, int((alpha_patch > 0.5).sum())


def finish_scene(canvas: np.ndarray, classes: list[int], layers: list[np.ndarray], full_areas: list[int],
                 label: int) -> Scene:
    """Derive visible masks (topmost alpha > 0.5 wins), boxes and visible fractions; quantise the image."""
    owner = np.full(canvas.shape[:2], -1, np.int16)
    for k, layer in enumerate(layers):
        owner[layer > 0.5] = k
    objects = []
    for k, cls in enumerate(classes):
        mask = owner == k
        objects.append(SceneObject(cls=int(cls), mask=mask, visible=float(mask.sum()) / max(full_areas[k], 1),
                                   box=mask_box(mask)))
    image = np.clip(np.rint(canvas * 255.0), 0, 255).astype(np.uint8)
    return Scene(image=image, objects=objects, label=int(label))


def _object_size(rng: np.random.Generator, params: SceneParams, scale: float | None = None) -> tuple[int, int, float]:
    s = params.size
    lo, hi = params.object_scale
    # Log-size from a symmetric Beta on [log lo, log hi]: shape < 1 favours the extremes (close-ups and small
    # far-away objects), which is what lets the world match both Fig. 2 fractions at once.
    u = rng.beta(params.object_scale_shape, params.object_scale_shape)
    frac = scale if scale is not None else float(np.exp(np.log(lo) + u * (np.log(hi) - np.log(lo))))
    h = max(6, int(round(frac * s)))
    w = max(5, int(round(h * rng.uniform(0.9, 1.25))))
    return h, w, float(rng.uniform(-20.0, 20.0))


def sample_scene(rng: np.random.Generator, params: SceneParams, sources: Sources, pool: str, label_class: int,
                 *, height: int | None = None, width: int | None = None, n_objects: int | None = None,
                 classes: list[int] | None = None, scale_range: tuple[float, float] | None = None) -> Scene:
    """Draw one scene "collected for" ``label_class``: 1-3 digits (classes drawn around it) on a photo crop.

    ``classes`` fixes the object classes (first = the collected one); ``scale_range`` overrides the object size
    range; ``height``/``width`` give non-square scenes (COCO-style). Under ``label_rule == "largest"`` the collected
    object gets the largest size and the label is the class with the largest visible area.
    """
    H, W = height or params.size, width or params.size
    if classes is None:
        n = n_objects or 1 + int(rng.choice(len(params.n_objects_probs), p=params.n_objects_probs))
        classes = [label_class]
        for _ in range(n - 1):
            if rng.random() < params.same_class_prob:
                classes.append(label_class)
            else:
                classes.append(int((label_class + rng.integers(1, 10)) % 10))
    sub = params if scale_range is None else _with_scale(params, scale_range)
    sizes = [_object_size(rng, sub) for _ in classes]
    if params.label_rule == "largest":
        sizes.sort(key=lambda hwa: -hwa[0] * hwa[1])
    glyph_sets = [sources.glyphs_of(pool, c) for c in classes]
    glyphs = [g[int(rng.integers(len(g)))] for g in glyph_sets]
    alphas = [glyph_alpha(g, h, w, a) for g, (h, w, a) in zip(glyphs, sizes)]
    background = sample_background(rng, sources, pick_background_photo(rng, label_class, params.bg_class_corr),
                                   H, W)
    # Re-draw positions and paste order until the collected object stays visible enough (bounded tries; the
    # last draw is kept so generation never loops forever on a pathological size draw).
    for _ in range(12):
        order = rng.permutation(len(classes))
        positions = []
        for patch in alphas:
            ph, pw = patch.shape
            # A quarter of an object may hang over the frame, like truncated objects in real photos.
            y0 = int(rng.integers(-ph // 4, max(H - ph + ph // 4, -ph // 4) + 1))
            x0 = int(rng.integers(-pw // 4, max(W - pw + pw // 4, -pw // 4) + 1))
            positions.append((y0, x0))
        canvas = background.copy()
        layers, full_areas, cls_in_order = [], [], []
        for k in order:
            y0, x0 = positions[k]
            ph, pw = alphas[k].shape
            region = canvas[max(0, y0):max(0, y0 + ph), max(0, x0):max(0, x0 + pw)]
            lum = float(region.mean()) if region.size else 0.5
            layer, full = paint(canvas, alphas[k], y0, x0, ink_colour(rng, lum))
            layers.append(layer)
            full_areas.append(full)
            cls_in_order.append(classes[k])
        scene = finish_scene(canvas, cls_in_order, layers, full_areas, label_class)
        collected = scene.objects[int(np.flatnonzero(order == 0)[0])]
        if collected.visible >= params.min_label_visible:
            break
    if params.label_rule == "largest":
        scene.label = max(scene.objects, key=lambda o: o.area).cls
    return scene


def _with_scale(params: SceneParams, scale_range: tuple[float, float]) -> SceneParams:
    from dataclasses import replace
    return replace(params, object_scale=scale_range)


def true_labels(scene: Scene, threshold: float) -> list[int]:
    """Classes with at least one object whose visible fraction reaches ``threshold`` (the ReaL-style set)."""
    return sorted({o.cls for o in scene.objects if o.visible >= threshold and o.box is not None})


def unclear_labels(scene: Scene, threshold: float) -> list[int]:
    """Classes present only through partly visible objects (Shankar et al.'s "unclear")."""
    clear = set(true_labels(scene, threshold))
    return sorted({o.cls for o in scene.objects if o.box is not None} - clear)
