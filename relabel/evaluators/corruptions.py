"""ImageNet-C's corruption functions, seeded and patched: what the imagenet_c unit corrupts val with on the fly.

On the fly, each val crop is corrupted as uint8 pixels (as the release was made); the noise of image i at
(corruption, severity) is seeded by (c_seed, corruption, severity, i), so a run is reproducible and every model sees
the same corrupted pixels. `mce_scope` says what an mCE over a subset covers: the record (`c_mce_scope`,
`c_mce_complete`) and the CLIs' print say so ("mCE over 3 of 15 corruptions, not the benchmark's").

`imagecorruptions` 1.1.2 predates numpy 2 and scikit-image 0.26 (glass_blur and fog fail there): `load()` gives
its module a numpy that still has `np.float_` and a `gaussian` that maps `multichannel=` to `channel_axis=`,
and a `random_noise` seeded from numpy's global RNG like every other corruption (impulse_noise was not seedable),
without touching numpy or scikit-image for anyone else.
"""
from __future__ import annotations

import functools
import types
import warnings
import zlib

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T

from relabel.metrics import ALEXNET_ERR, SEVERITIES
from relabel.evaluators.base import EvalError
from relabel.loader import IMAGENET_MEAN, IMAGENET_STD, _mix

MIN_SIZE = 32  # imagecorruptions refuses smaller images


@functools.lru_cache(maxsize=1)
def load() -> types.ModuleType:
    """`imagecorruptions.corruptions`, patched for numpy 2 / scikit-image ≥ 0.19 (see the module docstring)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # its `pkg_resources` import warns on every start
        import imagecorruptions.corruptions as C
    import skimage
    import skimage.util
    from skimage.filters import gaussian as _gaussian

    def gaussian(image, *args, multichannel=None, **kw):
        if multichannel is not None and "channel_axis" not in kw:
            kw["channel_axis"] = -1 if multichannel else None
        return _gaussian(image, *args, **kw)

    def random_noise(image, *args, **kw):  # skimage ≥ 0.19 draws from its own unseeded Generator
        kw.setdefault("rng", int(np.random.randint(0, 2**31 - 1)))
        return skimage.util.random_noise(image, *args, **kw)

    C.np = _proxy("numpy_compat", np, float_=np.float64)
    C.sk = _proxy("skimage_compat", skimage, util=_proxy("skimage_util_compat", skimage.util,
                                                          random_noise=random_noise))
    C.gaussian = gaussian
    return C


def _proxy(name: str, module: types.ModuleType, **overrides) -> types.ModuleType:
    """A module that is `module` except for `overrides` (the original module stays untouched)."""
    proxy = types.ModuleType(name)
    proxy.__getattr__ = lambda attr: getattr(module, attr)
    proxy.__dict__.update(overrides)
    return proxy


def corrupt(image: np.ndarray, name: str, severity: int, seed: int) -> np.ndarray:
    """`image` (uint8 H×W×3) corrupted by `name` at `severity`, with the global numpy RNG seeded by `seed`
    (imagecorruptions draws from it) and restored afterwards."""
    fn = getattr(load(), name, None)
    if fn is None:
        raise EvalError(f"'{name}' is not an imagecorruptions corruption; use one of {', '.join(ALEXNET_ERR)}.")
    state = np.random.get_state()
    try:
        np.random.seed(seed % 2**32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(Image.fromarray(image), severity)  # as imagecorruptions.corrupt calls them
    finally:
        np.random.set_state(state)
    return np.uint8(np.clip(out, 0, 255))  # imagecorruptions.corrupt casts without the clip; values are in range


class CorruptedSet(Dataset):
    """(normalised corrupted image, index) of clean uint8 crops at one (corruption, severity)."""

    def __init__(self, crops: list[np.ndarray], name: str, severity: int, seed: int):
        self.crops, self.name, self.severity = crops, name, severity
        self.seed = _mix(seed, zlib.crc32(name.encode()), severity)
        self.to_tensor = T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int):
        return self.to_tensor(corrupt(self.crops[i], self.name, self.severity, _mix(self.seed, i))), i


class CleanSet(Dataset):
    """(normalised clean crop, index): the same pixels the corruptions start from."""

    def __init__(self, crops):
        self.crops = crops
        self.to_tensor = T.Compose([T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int):
        return self.to_tensor(self.crops[i]), i


def _subset(n_total: int, n: int | None, seed: int) -> list[int]:
    """The first n of a seed-`seed` permutation of range(n_total), in ascending order (all when n is None)."""
    if n is None or n >= n_total:
        return list(range(n_total))
    g = torch.Generator().manual_seed(_mix(seed, 0xC0))
    return sorted(torch.randperm(n_total, generator=g)[:n].tolist())


def mce_scope(corruptions, severities) -> dict:
    """What an mCE covers, for records and print: the benchmark's mCE averages all 15 corruptions at severities
    1-5 (Hendrycks & Dietterich); over a subset it is another number and says so ("mCE over 3 of 15 corruptions")."""
    n = len({c for c in corruptions if c in ALEXNET_ERR})
    sev = sorted(set(int(s) for s in severities))
    complete = n == len(ALEXNET_ERR) and sev == list(SEVERITIES)
    if complete:
        return {"c_mce_complete": True, "c_mce_scope": f"mCE over all {n} corruptions at severities 1-5 (the "
                                                       f"benchmark's)"}
    scope = f"mCE over {n} of {len(ALEXNET_ERR)} corruptions"
    if sev != list(SEVERITIES):
        scope += f" at severities {','.join(map(str, sev))} of 1-5"
    return {"c_mce_complete": False, "c_mce_scope": scope + ", not the benchmark's"}
