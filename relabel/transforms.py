"""Crop transforms that return the crop box and flip flag that LabelPooling needs, alongside the image.

The one box convention of this project (annotator, store, LabelPooling, Fig. 2 and Fig. 5 all use it):

* A box is ``(x1, y1, x2, y2)`` in [0, 1] of the ORIGINAL, uncropped image: ``x`` runs along the width
  (columns, left → right), ``y`` along the height (rows, top → bottom). Coordinates are pixel EDGES, so a
  crop of pixel columns ``j .. j+w-1`` of a ``W``-wide image is ``x1 = j / W``, ``x2 = (j + w) / W``, and
  the whole image is ``(0, 0, 1, 1)``.
* A label map of grid ``h × w`` covers the whole image (the annotator resizes the uncropped image, paper
  §3.1), so cell ``(r, c)`` covers ``[c/w, (c+1)/w] × [r/h, (r+1)/h]`` and its value sits at the cell centre.
* ``flipped`` means the crop was mirrored left-right. The box always stays in original-image coordinates;
  a flip applied before a crop is folded into the box (see :func:`compose_crop`), so the flag only ever
  mirrors the pooled output (a no-op for 1×1 pooling, which is why the official code ignores it).

Note the official code keeps ``(top, left, height, width)`` instead and pools the transposed box
(see ``relabel.pooling``'s official mode); nothing here uses that order.

Use :class:`ComposeWithBox` in place of ``torchvision.transforms.Compose``: box-aware transforms
(:class:`RandomResizedCropWithBox`, :class:`RandomHorizontalFlipWithBox`) update the box, all other
transforms (ColorJitter, ToTensor, Normalize, Resize of the whole image, …) see only the image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torchvision import transforms as T
from torchvision.transforms import functional as F

__all__ = [
    "CropBox",
    "compose_crop",
    "RandomResizedCropWithBox",
    "RandomHorizontalFlipWithBox",
    "ComposeWithBox",
]


@dataclass(frozen=True)
class CropBox:
    """Where the current image sits in the original one: a box in [0, 1] (x along width) and a mirror flag."""

    x1: float = 0.0
    y1: float = 0.0
    x2: float = 1.0
    y2: float = 1.0
    flipped: bool = False

    def as_tensor(self) -> torch.Tensor:
        """The box as a float32 tensor ``[x1, y1, x2, y2]`` (what ``label_pool`` takes, one row per crop)."""
        return torch.tensor([self.x1, self.y1, self.x2, self.y2], dtype=torch.float32)


def compose_crop(state: CropBox, rel: tuple[float, float, float, float]) -> CropBox:
    """The box of a crop ``rel`` (x1, y1, x2, y2 in [0, 1] of the CURRENT image) in original-image coordinates.

    If the current image is already mirrored, its x axis runs right → left in the original, so the crop's
    x-interval is reflected inside the current box; the mirror flag carries over unchanged.
    """
    u1, v1, u2, v2 = rel
    bw, bh = state.x2 - state.x1, state.y2 - state.y1
    if state.flipped:
        x1, x2 = state.x2 - u2 * bw, state.x2 - u1 * bw
    else:
        x1, x2 = state.x1 + u1 * bw, state.x1 + u2 * bw
    return CropBox(x1, state.y1 + v1 * bh, x2, state.y1 + v2 * bh, state.flipped)


class RandomResizedCropWithBox(T.RandomResizedCrop):
    """torchvision's RandomResizedCrop (same parameters, same random draws) that also returns the crop box."""

    def forward(self, img, state: CropBox | None = None):
        state = CropBox() if state is None else state
        i, j, h, w = self.get_params(img, self.scale, self.ratio)
        _, height, width = F.get_dimensions(img)
        out = F.resized_crop(img, i, j, h, w, self.size, self.interpolation, antialias=self.antialias)
        return out, compose_crop(state, (j / width, i / height, (j + w) / width, (i + h) / height))


class RandomHorizontalFlipWithBox(T.RandomHorizontalFlip):
    """torchvision's RandomHorizontalFlip (same random draw) that records the flip in the box state."""

    def forward(self, img, state: CropBox | None = None):
        state = CropBox() if state is None else state
        if torch.rand(1) < self.p:
            return F.hflip(img), CropBox(state.x1, state.y1, state.x2, state.y2, not state.flipped)
        return img, state


# torchvision transforms that move pixels: inside ComposeWithBox they would silently desynchronise the box.
_GEOMETRIC = (
    T.RandomResizedCrop, T.RandomCrop, T.CenterCrop, T.FiveCrop, T.TenCrop, T.RandomHorizontalFlip,
    T.RandomVerticalFlip, T.RandomRotation, T.RandomAffine, T.RandomPerspective, T.ElasticTransform, T.Pad,
)
_BOX_AWARE = (RandomResizedCropWithBox, RandomHorizontalFlipWithBox)


class ComposeWithBox:
    """Like ``torchvision.transforms.Compose`` but returns ``(image, box[4] float32, flipped bool)``.

    The default collate stacks the outputs into ``boxes [B, 4]`` and ``flips [B]``, which is what
    ``relabel.pooling.label_pool`` takes.
    """

    def __init__(self, transforms):
        self.transforms = list(transforms)
        for t in self.transforms:
            if isinstance(t, _GEOMETRIC) and not isinstance(t, _BOX_AWARE):
                raise TypeError(
                    f"{type(t).__name__} moves pixels without updating the crop box; use "
                    "RandomResizedCropWithBox / RandomHorizontalFlipWithBox (or add a box-aware version) instead."
                )

    def __call__(self, img):
        state = CropBox()
        for t in self.transforms:
            if isinstance(t, _BOX_AWARE):
                img, state = t(img, state)
            else:
                img = t(img)
        return img, state.as_tensor(), state.flipped

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({inner}\n)"
