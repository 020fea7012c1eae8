"""Write the robustness/generalisation test sets: ImageNetV2-like, ImageNet-A-like and background challenge (IN-9).

* ``v2/<variant>/<int class>/<sha1>.png`` for variants ``matched-frequency``, ``threshold0.7``, ``top-images``:
  re-collected from a slightly shifted world (smaller objects, more clutter), then selected per class by a
  simulated selection frequency as ImageNetV2 did. The label is ``int(folder)``, not the sorted position.
* ``imagenet_a/<class>/a_<8-digit n>.png`` + ``indices.txt`` (fine class indices of the subset, one per line, as
  timm's ``imagenet_a_indices.txt``) + ``synsets.txt`` (their folder names): hard scenes that a reference
  classifier (logistic regression on HOG features, trained on ``train``) gets wrong, over 5 of the 10 classes.
* ``bgc/<variant>/val/<NN_coarse>/in9_<8-digit n>.png`` for original, only_bg_t, no_fg, only_fg, mixed_same,
  mixed_rand, plus ``bgc/fg_mask/val/<NN_coarse>/in9_<n>.npy`` (bool [H, W]) and ``bgc/in_to_in9.json``
  (``{"<fine index>": coarse index or -1}``).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .world_config import WorldConfig
from .core_splits import balanced_classes, selection_frequency
from .formats import png_bytes, save_png, split_rng, write_json
from .scenes import Scene, sample_scene
from .sources import CLASS_NAMES, Sources

__all__ = ["V2_VARIANTS", "IMAGENET_A_CLASSES", "IN9_CLASSES", "IN_TO_IN9", "BGC_VARIANTS",
           "write_v2", "write_imagenet_a", "write_bgc", "ReferenceClassifier"]

V2_VARIANTS = ("matched-frequency", "threshold0.7", "top-images")
# Like ImageNet-A's 200 of 1000 classes: a fixed subset.
IMAGENET_A_CLASSES = (1, 3, 4, 7, 9)
# Coarse classes by glyph shape, folder names as IN-9's ("00_dog", ...). Digits 4 and 9 map to -1 like the 630
# ImageNet classes outside IN-9: a prediction of those counts as wrong.
IN9_CLASSES = ("00_loop", "01_line", "02_curve", "03_knot")
IN_TO_IN9 = {0: 0, 6: 0, 1: 1, 7: 1, 2: 2, 3: 2, 5: 2, 8: 3, 4: -1, 9: -1}
BGC_VARIANTS = ("original", "only_bg_t", "no_fg", "only_fg", "mixed_same", "mixed_rand")
_V2_POOL_FACTOR = 4  # candidates per selected image: ImageNetV2 also chose from a larger candidate pool
_V2_SHIFT = 0.5  # extra difficulty of the re-collected world: "new photos" are a little harder


def write_v2(dest: Path, seed: int, cfg: WorldConfig, sources: Sources, val_selection_frequency: list[float]) -> dict:
    """Collect a candidate pool and write the three ImageNetV2-style variants; return counts per variant."""
    params = cfg.scene_params(extra_difficulty=_V2_SHIFT)
    n = cfg.n_v2_per_class
    if n == 0:
        return {v: 0 for v in V2_VARIANTS}
    labels = balanced_classes(seed, "v2", n * _V2_POOL_FACTOR * len(CLASS_NAMES))
    # (selection frequency, image) per candidate: the images alone, not the scenes' masks (40,000 candidates at 10,000
    # per variant)
    pool: dict[int, list[tuple[float, np.ndarray]]] = {c: [] for c in range(len(CLASS_NAMES))}
    for i, cls in enumerate(labels):
        rng = split_rng(seed, "v2", i)
        scene = sample_scene(rng, params, sources, "test", int(cls))
        pool[scene.label].append((selection_frequency(rng, scene, cfg.image_size), scene.image))
    bins = np.linspace(0.0, 1.0, 6)
    val_hist = np.histogram(val_selection_frequency, bins=bins)[0].astype(float)
    val_hist /= max(val_hist.sum(), 1.0)
    counts = {}
    for variant in V2_VARIANTS:
        rng = split_rng(seed, "v2/" + variant, 0)
        written = 0
        for cls, cands in pool.items():
            freq = np.array([f for f, _ in cands])
            chosen = _select(variant, rng, freq, n, bins, val_hist)
            folder = dest / "v2" / variant / str(cls)
            folder.mkdir(parents=True, exist_ok=True)
            for j in chosen:
                data = png_bytes(cands[j][1])
                (folder / f"{hashlib.sha1(data).hexdigest()}.png").write_bytes(data)
                written += 1
        counts[variant] = written
    return counts


def _select(variant: str, rng: np.random.Generator, freq: np.ndarray, n: int, bins: np.ndarray,
            val_hist: np.ndarray) -> list[int]:
    """Indices of ``n`` candidates chosen by one ImageNetV2 rule (ties broken by candidate order)."""
    n = min(n, len(freq))
    by_freq = list(np.argsort(-freq, kind="stable"))
    if variant == "top-images":
        return by_freq[:n]
    if variant == "threshold0.7":
        ok = np.flatnonzero(freq >= 0.7)
        picked = list(rng.permutation(ok)[:n])
        return picked + [j for j in by_freq if j not in set(picked)][:n - len(picked)]
    # matched-frequency: per selection-frequency bin, as many as the val distribution has there.
    which = np.clip(np.digitize(freq, bins[1:-1]), 0, len(val_hist) - 1)
    want = np.floor(val_hist * n).astype(int)
    want[np.argmax(val_hist)] += n - want.sum()
    picked: list[int] = []
    for b in range(len(val_hist)):
        members = rng.permutation(np.flatnonzero(which == b))
        picked += list(members[:want[b]])
    rest = [j for j in rng.permutation(len(freq)) if j not in set(picked)]  # bins short of candidates
    return picked + rest[:n - len(picked)]


class ReferenceClassifier:
    """Logistic regression on HOG features: ImageNet-A's "fixed reference model" for the mini world."""

    def __init__(self, images: list[np.ndarray], labels: list[int]):
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
        from threadpoolctl import threadpool_limits
        feats = self.features(images)
        with threadpool_limits(1):  # one BLAS thread: the fitted weights must not depend on the machine
            self.scaler = StandardScaler().fit(feats)
            self.model = LogisticRegression(max_iter=300, C=0.1).fit(self.scaler.transform(feats), labels)

    @staticmethod
    def features(images: list[np.ndarray]) -> np.ndarray:
        from skimage.feature import hog
        return np.stack([hog(im.mean(axis=2), orientations=8, pixels_per_cell=(8, 8), cells_per_block=(2, 2))
                         for im in images])

    def predict(self, images: list[np.ndarray]) -> np.ndarray:
        from threadpoolctl import threadpool_limits
        with threadpool_limits(1):
            return self.model.predict(self.scaler.transform(self.features(images)))


def write_imagenet_a(dest: Path, seed: int, cfg: WorldConfig, sources: Sources,
                     reference: ReferenceClassifier) -> dict:
    """Keep hard candidate scenes of the subset classes that ``reference`` misclassifies; return counts."""
    params = cfg.scene_params(extra_difficulty=1.0)
    root = dest / "imagenet_a"
    kept, tried, batch = 0, 0, max(64, cfg.n_imagenet_a)
    while kept < cfg.n_imagenet_a and tried < 50 * max(cfg.n_imagenet_a, 1):
        labels = balanced_classes(seed, f"imagenet_a/{tried}", batch, IMAGENET_A_CLASSES)
        scenes = [sample_scene(split_rng(seed, "imagenet_a", tried + k), params, sources, "test", int(c))
                  for k, c in enumerate(labels)]
        tried += batch
        wrong = reference.predict([s.image for s in scenes]) != np.array([s.label for s in scenes])
        for scene in (s for s, w in zip(scenes, wrong) if w and s.label in IMAGENET_A_CLASSES):
            if kept == cfg.n_imagenet_a:
                break
            kept += 1
            save_png(root / CLASS_NAMES[scene.label] / f"a_{kept:08d}.png", scene.image)
    root.mkdir(parents=True, exist_ok=True)
    (root / "indices.txt").write_text("".join(f"{c}\n" for c in IMAGENET_A_CLASSES))
    (root / "synsets.txt").write_text("".join(f"{CLASS_NAMES[c]}\n" for c in IMAGENET_A_CLASSES))
    return {"images": kept, "candidates": tried, "classes": len(IMAGENET_A_CLASSES)}


def write_bgc(dest: Path, seed: int, cfg: WorldConfig, sources: Sources) -> dict:
    """Single-foreground scenes of the mapped classes and their IN-9 variants; return counts per variant."""
    params = cfg.scene_params()
    root = dest / "bgc"
    write_json(root / "in_to_in9.json", {str(k): v for k, v in IN_TO_IN9.items()})
    coarse = balanced_classes(seed, "bgc", cfg.n_bgc_per_class * len(IN9_CLASSES), range(len(IN9_CLASSES)))
    items = []  # (coarse, scene, background with the foreground's box tiled over)
    for i, c in enumerate(coarse, start=1):
        rng = split_rng(seed, "bgc", i)
        fine = [k for k, v in IN_TO_IN9.items() if v == c]
        cls = int(fine[int(rng.integers(len(fine)))])
        scene = sample_scene(rng, params, sources, "heldout", cls, n_objects=1, scale_range=(0.45, 0.9))
        items.append((int(c), scene, _tiled_background(scene)))
    for i, (c, scene, bg_t) in enumerate(items, start=1):
        rng = split_rng(seed, "bgc/mix", i)
        same = [j for j, it in enumerate(items) if it[0] == c and j != i - 1]
        other_same = items[same[int(rng.integers(len(same)))]][2] if same else bg_t
        other_rand = items[int(rng.integers(len(items)))][2]
        mask = scene.objects[0].mask
        m3 = mask[:, :, None]
        images = {
            "original": scene.image,
            "only_bg_t": bg_t,
            "no_fg": np.where(m3, 0, scene.image).astype(np.uint8),
            "only_fg": np.where(m3, scene.image, 0).astype(np.uint8),
            "mixed_same": np.where(m3, scene.image, other_same).astype(np.uint8),
            "mixed_rand": np.where(m3, scene.image, other_rand).astype(np.uint8),
        }
        name = f"in9_{i:08d}"
        for variant, image in images.items():
            save_png(root / variant / "val" / IN9_CLASSES[c] / f"{name}.png", image)
        mask_path = root / "fg_mask" / "val" / IN9_CLASSES[c] / f"{name}.npy"
        mask_path.parent.mkdir(parents=True, exist_ok=True)
        np.save(mask_path, mask)
    return {v: len(items) for v in BGC_VARIANTS + ("fg_mask",)}


def _tiled_background(scene: Scene) -> np.ndarray:
    """IN-9's only_bg_t: the foreground's box filled by tiling the largest background strip beside it (seams
    stay visible, as in IN-9); the strip lies outside the box, so no foreground pixel leaks in."""
    image = scene.image.copy()
    if scene.objects[0].box is None:
        return image
    h, w = image.shape[:2]
    x1, y1, x2, y2 = scene.objects[0].box
    x1, y1, x2, y2 = max(0, x1 - 1), max(0, y1 - 1), min(w, x2 + 1), min(h, y2 + 1)  # alpha fringe
    bh, bw = y2 - y1, x2 - x1
    strips = [image[:y1, x1:x2], image[y2:, x1:x2], image[y1:y2, :x1], image[y1:y2, x2:]]
    strip = max(strips, key=lambda a: a.shape[0] * a.shape[1])
    if strip.size == 0:  # the box fills the frame: nothing left to tile from
        image[y1:y2, x1:x2] = image.reshape(-1, 3).mean(axis=0).astype(np.uint8)
        return image
    reps = (-(-bh // strip.shape[0]), -(-bw // strip.shape[1]), 1)
    image[y1:y2, x1:x2] = np.tile(strip, reps)[:bh, :bw]
    return image
