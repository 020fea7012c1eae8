"""Load the real content the mini world is made of: bundled handwritten digits and sample photographs.

Everything here ships inside installed packages (scikit-learn's ``load_digits`` and its two sample JPEGs,
scikit-image's bundled ``skimage/data/*.png``), so the world needs no network. Files are read from the package
folders directly, never through ``skimage.data.<name>()``, whose fetcher may try to download.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

__all__ = [
    "CLASS_NAMES", "PHOTOS", "HABITATS", "TEXTURES", "GLYPH_POOLS",
    "Sources", "load_sources", "load_texture_photos", "photo_path",
]

# Class folder names sort as strings in index order (the ImageNet convention: index = sorted folder position).
CLASS_NAMES = tuple(f"digit{k}" for k in range(10))

# Natural photographs used as backgrounds. Text-like images (page, text) are left out: they contain glyphs.
PHOTOS = (
    "astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png", "coffee.png", "coins.png",
    "grass.png", "gravel.png", "hubble_deep_field.jpg", "ihc.png", "moon.png", "motorcycle_left.png",
    "retina.jpg", "rocket.jpg", "china.jpg", "flower.jpg",
)
# Each class has a "habitat" photo it is often found on, like fish on water in ImageNet; this class/background
# correlation is what the background challenge (IN-9 mixed_same vs mixed_rand) measures.
HABITATS = (
    "grass.png", "coffee.png", "chelsea.png", "brick.png", "hubble_deep_field.jpg",
    "moon.png", "rocket.jpg", "ihc.png", "gravel.png", "china.jpg",
)
# Photographs that read as one texture everywhere: the classes of the DTD-like fine-grained task.
TEXTURES = ("brick.png", "grass.png", "gravel.png", "moon.png", "hubble_deep_field.jpg", "ihc.png",
            "coins.png", "cell.png")
_SKLEARN_PHOTOS = ("china.jpg", "flower.jpg")

# Glyph instances are split once into disjoint pools so held-out splits never show a training glyph:
# fit (train, extra, COCO train, fine-grained train), heldout (val, COCO val, BGC, fine-grained val),
# test (ImageNetV2-like, ImageNet-A-like, fine-grained test).
GLYPH_POOLS = {"fit": (0.0, 0.6), "heldout": (0.6, 0.8), "test": (0.8, 1.0)}
# Short side, in pixels, photos are reduced to once; background crops are taken from these.
PHOTO_SHORT_SIDE = 192


def photo_path(name: str) -> Path:
    """Path of a bundled photograph inside scikit-image or scikit-learn; raise if the package lacks it."""
    if name in _SKLEARN_PHOTOS:
        import sklearn.datasets
        path = Path(sklearn.datasets.__file__).parent / "images" / name
    else:
        import skimage
        path = Path(skimage.__file__).parent / "data" / name
    if not path.is_file():
        raise FileNotFoundError(f"bundled photograph {path} is missing; reinstall scikit-image/scikit-learn "
                                f"(the mini world never downloads data).")
    return path


@dataclass(frozen=True)
class Sources:
    """Glyphs (float32 [n, 8, 8] in [0, 1]) with labels per pool, and photos as float32 RGB in [0, 1]."""
    glyphs: dict[str, np.ndarray]
    glyph_labels: dict[str, np.ndarray]
    photos: dict[str, np.ndarray]

    def glyphs_of(self, pool: str, cls: int) -> np.ndarray:
        """All glyphs of class ``cls`` in ``pool`` (shape [n, 8, 8])."""
        return self.glyphs[pool][self.glyph_labels[pool] == cls]


def _load_photo(name: str, short_side: int) -> np.ndarray:
    with Image.open(photo_path(name)) as im:
        im = im.convert("RGB")
        scale = short_side / min(im.size)
        size = (max(short_side, round(im.size[0] * scale)), max(short_side, round(im.size[1] * scale)))
        im = im.resize(size, Image.Resampling.BILINEAR, reducing_gap=None)
        return np.asarray(im, dtype=np.float32) / 255.0


@lru_cache(maxsize=2)
def load_sources(short_side: int = PHOTO_SHORT_SIDE) -> Sources:
    """Load digits and photographs once per process; the glyph pool split is fixed, independent of the seed."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0).astype(np.float32)
    labels = digits.target.astype(np.int64)
    # A fixed, class-stratified split (by order of appearance within each class) keeps pools balanced and
    # identical for every seed, so a world's seed never changes which glyphs are held out.
    glyphs: dict[str, list] = {p: [] for p in GLYPH_POOLS}
    glyph_labels: dict[str, list] = {p: [] for p in GLYPH_POOLS}
    for cls in range(len(CLASS_NAMES)):
        members = np.flatnonzero(labels == cls)
        for pool, (lo, hi) in GLYPH_POOLS.items():
            part = members[int(lo * len(members)):int(hi * len(members))]
            glyphs[pool].append(images[part])
            glyph_labels[pool].append(np.full(len(part), cls))
    photos = {name: _load_photo(name, short_side) for name in sorted(set(PHOTOS) | set(TEXTURES))}
    return Sources(
        glyphs={p: np.concatenate(v) for p, v in glyphs.items()},
        glyph_labels={p: np.concatenate(v) for p, v in glyph_labels.items()},
        photos=photos,
    )


@lru_cache(maxsize=1)
def load_texture_photos(short_side: int = 2 * PHOTO_SHORT_SIDE) -> dict[str, np.ndarray]:
    """The texture photographs at twice the background resolution: the DTD-like task cuts patches from disjoint
    vertical strips of each, and a strip must still hold patches wider than the image size."""
    return {name: _load_photo(name, short_side) for name in TEXTURES}
