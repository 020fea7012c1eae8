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
from typing import ClassVar, NamedTuple

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as F

__all__ = [
    "BatchedColorJitterNormalize",
    "CropBox",
    "Pending",
    "collate_pending",
    "compose_crop",
    "RandomResizedCropWithBox",
    "RandomHorizontalFlipWithBox",
    "ComposeWithBox",
    "resize_u8",
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


_STANDINS: dict[tuple[int, int], torch.Tensor] = {}


def _standin(height: int, width: int) -> torch.Tensor:
    """A zero-stride [3, height, width] tensor, no pixels: what RandomResizedCrop.get_params reads (only the size)
    of an image held as an array; cached per size (most ImageNet images share a few sizes; making one costs ~50 µs)."""
    t = _STANDINS.get((height, width))
    if t is None:
        if len(_STANDINS) >= 1024:
            _STANDINS.clear()
        t = _STANDINS[height, width] = torch.zeros(()).expand(3, height, width)
    return t


def resize_u8(crop: np.ndarray, size) -> torch.Tensor:
    """An ``[h, w, 3]`` uint8 crop resized to `size` (``[height, width]``) as a uint8 ``[3, height, width]`` tensor,
    bilinear with antialiasing, by torch's uint8 kernel: Pillow-SIMD's fixed-point arithmetic (AVX2 on x86), ~3x
    less CPU than PIL's resize on 224-px training crops. Its pixels are within 2 levels of PIL's ``BILINEAR``
    resize (torchvision's PIL path), differing in a few percent of values on photographs (issue 27: 2.9% on the
    loader benchmark's JPEG crops; tested). The crop is copied first (~0.03 ms): the kernel's channels-last input,
    and no tensor over the transient read's read-only buffer."""
    x = torch.from_numpy(np.array(crop)).permute(2, 0, 1).unsqueeze(0)
    return torch.nn.functional.interpolate(x, size=tuple(size), mode="bilinear", antialias=True,
                                           align_corners=False)[0].contiguous()  # planar (a 1×1 crop's may not be)


class RandomResizedCropWithBox(T.RandomResizedCrop):
    """torchvision's RandomResizedCrop (same parameters, same random draws) that also returns the crop box.

    It also takes an ``[H, W, 3]`` uint8 array (`relabel.loader.load_rgb`'s transient read of a JPEG, the training
    loader's path at full scale): the crop is cut from the array and resized by torch's uint8 kernel
    (`resize_u8`) into a uint8 ``[3, H, W]`` tensor, within 2 levels of PIL's resize (bilinear with antialiasing;
    any other interpolation, or ``antialias=False``, goes through PIL: the same pixels as cropping a PIL image). The
    box and the draws are the same either way. A PIL image (the mini world's PNGs, a cached dataset) goes through
    torchvision's PIL path. So the pixels of a JPEG dataset depend on whether it is cached (``cache_images``), which
    no recipe hash covers, and torch's kernel may round differently on a CPU without AVX2 (within the same 2
    levels, tested wherever the tests run)."""

    def forward(self, img, state: CropBox | None = None):
        state = CropBox() if state is None else state
        if isinstance(img, np.ndarray):
            height, width = img.shape[:2]
            i, j, h, w = self.get_params(_standin(height, width), self.scale, self.ratio)
            crop = img[i:i + h, j:j + w]
            if self.interpolation == T.InterpolationMode.BILINEAR and self.antialias is not False:
                out = resize_u8(crop, self.size)
            else:
                out = F.resize(Image.fromarray(crop), self.size, self.interpolation, antialias=self.antialias)
        else:
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


def _to_pil(img) -> Image.Image:
    """An ``[H, W, 3]`` uint8 array or a uint8 ``[3, H, W]`` tensor as a PIL image."""
    return Image.fromarray(img if isinstance(img, np.ndarray) else img.permute(1, 2, 0).numpy())


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
        """`img`: a PIL image, or an ``[H, W, 3]`` uint8 array, which only `RandomResizedCropWithBox` takes as it is
        (it crops the array itself, and returns a uint8 tensor, which the flip and `BatchedColorJitterNormalize`
        take as it is); before any other transform, and at the end, the image becomes a PIL image."""
        state = CropBox()
        raw = isinstance(img, np.ndarray)  # the array, then resize_u8's tensor: not what other transforms expect
        for t in self.transforms:
            if raw and not isinstance(t, _TAKES_ARRAY if isinstance(img, np.ndarray) else _TAKES_TENSOR):
                img, raw = _to_pil(img), False
            if isinstance(t, _BOX_AWARE):
                img, state = t(img, state)
            else:
                img = t(img)
            raw = raw and isinstance(img, (np.ndarray, torch.Tensor))
        if raw:
            img = _to_pil(img)
        return img, state.as_tensor(), state.flipped

    def finish_batch(self, x):
        """A collated batch of images made ready for the model: the batched stages (``finish``) of the transforms
        that left their work ``Pending``; a batch of plain tensors comes back as it is."""
        for t in self.transforms:
            if isinstance(x, Pending) and hasattr(t, "finish"):
                x = t.finish(x)
        return x

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t}" for t in self.transforms)
        return f"{type(self).__name__}({inner}\n)"


class Pending(NamedTuple):
    """An image whose colour jitter and normalisation are still to be applied, to a whole batch at once:
    `BatchedColorJitterNormalize` returns one per image (its random draws made per image), `default_collate`
    stacks the fields, and `BatchedColorJitterNormalize.finish` turns the batch into normalised float images."""

    pixels: torch.Tensor  # uint8 [3, H, W] (batched: [B, 3, H, W])
    order: torch.Tensor  # int64 [4]: torchvision ColorJitter's op order (0 brightness, 1 contrast, 2 saturation)
    factors: torch.Tensor  # float32 [3]: brightness, contrast, saturation factors (1 = unchanged)


def collate_pending(items: list[Pending]) -> Pending:
    """The 8-bit collate: a batch of `Pending` images as one uint8 ``[B, 3, H, W]`` batch, with the jitter draws
    beside it — 1 byte a pixel for the copy to the device, where `finish` runs on a GPU.

    The pixels are stacked as they lie, which saves the transposing copy `default_collate` makes: `pil_to_tensor`
    gives each image as a [3, H, W] view of PIL's [H, W, 3] bytes, so a batch of PIL images comes out channels-last
    (the model's layout); `resize_u8`'s planar images (a JPEG's transient read) come out contiguous NCHW (a
    transposing stack cost ~0.15 ms an image at 224 px, issue 27). `finish` takes either, and the trainer makes its
    output channels-last. In a DataLoader worker the batch is allocated in shared memory, as `default_collate` does,
    so handing it to the main process copies nothing."""
    planar = items[0].pixels.is_contiguous()
    parts = [p.pixels if planar else p.pixels.permute(1, 2, 0) for p in items]
    first = parts[0]
    out = None
    if torch.utils.data.get_worker_info() is not None:
        numel = first.numel() * len(parts)
        out = first.new(first._typed_storage()._new_shared(numel, device=first.device)).resize_(
            len(parts), *first.shape)
    pixels = torch.stack(parts, 0, out=out)
    pixels = pixels if planar else pixels.permute(0, 3, 1, 2)
    return Pending(pixels, torch.stack([p.order for p in items]), torch.stack([p.factors for p in items]))


class BatchedColorJitterNormalize(torch.nn.Module):
    """``ColorJitter(b, c, s)`` → ``ToTensor()`` → ``Normalize(mean, std)``, applied per batch.

    Per image it only makes torchvision ``ColorJitter``'s random draws (its own ``get_params``: op order, then the
    factors — the same draws, so the random stream of a run is unchanged) and keeps the 8-bit pixels; ``finish``
    then applies the ops to the whole batch with PIL's arithmetic, which torchvision's PIL path uses: brightness
    blends with black, contrast with the grey of the rounded mean luminance, saturation with the luminance image,
    each result clipped to [0, 255] and truncated to 8 bits, luminance as PIL's fixed-point ITU-R 601-2 ``L``.
    The output matches the per-image pipeline to float rounding (a tested ≤ 1 level in rare pixels) at a
    fraction of the cost: on the mini world's 48-px crops the per-image work was ~0.3 ms, a third of a training
    step on one core. Hue is not supported (no recipe here uses it). ``ComposeWithBox.finish_batch`` calls
    ``finish``; the trainer's collate does so inside the loader workers.
    """

    def __init__(self, brightness: float = 0.0, contrast: float = 0.0, saturation: float = 0.0,
                 mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
        super().__init__()
        self.jitter = T.ColorJitter(brightness, contrast, saturation)  # holds the ranges and draws the params
        self.mean, self.std = tuple(mean), tuple(std)

    @property
    def jitters(self) -> bool:
        j = self.jitter
        return any(r is not None for r in (j.brightness, j.contrast, j.saturation))

    def forward(self, img) -> Pending:
        """`img`: a PIL image, or a uint8 ``[3, H, W]`` tensor (`RandomResizedCropWithBox`'s from an array)."""
        pixels = img if isinstance(img, torch.Tensor) else F.pil_to_tensor(img)
        if pixels.shape[0] != 3:
            raise ValueError(f"expected an RGB image, got {pixels.shape[0]} channels")
        factors = torch.ones(3)
        order = torch.arange(4)
        if self.jitters:  # torchvision's ColorJitter draws nothing when it has no range: neither do we
            j = self.jitter
            order, b, c, s, _ = T.ColorJitter.get_params(j.brightness, j.contrast, j.saturation, None)
            factors = torch.tensor([1.0 if f is None else f for f in (b, c, s)])
        return Pending(pixels, order, factors)

    # Bytes of float32 pixels `finish` works on at once on a CPU: a few 224-px images, so the dozen passes of the
    # jitter arithmetic stay in the cache instead of streaming a whole batch (38 MB at 64 × 224²) through memory
    # each time (issue 27: at 224 px the batch-wide passes were half the loader's time); the mini world's 48-px
    # batches of 128 stay one chunk. Elementwise work and per-image means: the chunking changes no value.
    CPU_CHUNK_BYTES: ClassVar[int] = 4 << 20

    def finish(self, batch: Pending) -> torch.Tensor:
        """The batch's normalised float32 images, on the device its pixels are on. `order` and `factors` stay on the
        CPU, so on a GPU the grouping costs no device-to-host synchronisation. On a CPU the work goes a few
        images at a time (CPU_CHUNK_BYTES), in the NCHW layout whose channel slices the luminance reads densely."""
        pixels = batch.pixels
        dev = pixels.device
        n = pixels.shape[0]
        order, factors = batch.order.cpu(), batch.factors.cpu()
        mean = torch.tensor(self.mean, device=dev).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=dev).view(1, 3, 1, 1)
        per = n if dev.type != "cpu" else max(1, self.CPU_CHUNK_BYTES // max(1, pixels[0].numel() * 4))
        ops3 = order[order != 3].view(n, 3) if self.jitters else None  # hue (3) is never applied
        out = None if per >= n else torch.empty(pixels.shape, dtype=torch.float32, device=dev)
        for s in range(0, n, per):
            x = pixels[s:s + per]
            x = (x.contiguous() if dev.type == "cpu" else x).float()
            if ops3 is not None:
                key = ops3[s:s + per, 0] * 9 + ops3[s:s + per, 1] * 3 + ops3[s:s + per, 2]
                for k in key.unique().tolist():  # the images sharing one op order, as one sub-batch
                    idx = (key == k).nonzero().squeeze(1)
                    idx_dev = idx.to(dev, non_blocking=True)
                    sub = x[idx_dev]
                    for op in ops3[s + int(idx[0])].tolist():
                        f = factors[s + idx, op]
                        if not bool((f == 1.0).all()):  # factor 1 is the identity (a range of 0 draws no factor)
                            sub = self._op(sub, op, f.view(-1, 1, 1, 1).to(dev, non_blocking=True))
                    x[idx_dev] = sub
            x = (x / 255.0 - mean) / std
            if out is None:
                return x
            out[s:s + per] = x
        return out

    _L = (19595.0, 38470.0, 7471.0)  # PIL's fixed-point ITU-R 601-2 weights (× 2^16)

    @classmethod
    def _luma(cls, x: torch.Tensor) -> torch.Tensor:
        """PIL's RGB → L on 8-bit values, (19595 R + 38470 G + 7471 B + 2^15) >> 16, as [N, 1, H, W]; exact in
        float32: every product and partial sum is an integer below 2^24."""
        r, g, b = cls._L
        return torch.floor((x[:, 0:1] * r + x[:, 1:2] * g + x[:, 2:3] * b + 32768.0) / 65536.0)

    @classmethod
    def _op(cls, x: torch.Tensor, op: int, f: torch.Tensor) -> torch.Tensor:
        if op == 0:  # PIL ImageEnhance.Brightness: blend with black
            out = x * f
        else:
            luma = cls._luma(x)
            # Contrast: the grey level int(mean(L) + 0.5); Color (saturation): the L image itself
            degenerate = (torch.floor(luma.double().mean(dim=(1, 2, 3), keepdim=True) + 0.5).float() if op == 1
                          else luma)
            out = degenerate + f * (x - degenerate)
        # PIL's Image.blend: clipped, truncated to 8 bits (floor = trunc on [0, 255], and ~10x faster on CPU)
        return out.clamp_(0.0, 255.0).floor_()

    def __repr__(self) -> str:
        j = self.jitter
        return (f"{type(self).__name__}(brightness={j.brightness}, contrast={j.contrast}, "
                f"saturation={j.saturation}, mean={self.mean}, std={self.std})")


# What ComposeWithBox hands an array (a transient read) or resize_u8's uint8 tensor as it is; others get PIL images.
_TAKES_ARRAY = (RandomResizedCropWithBox,)
_TAKES_TENSOR = (RandomHorizontalFlipWithBox, BatchedColorJitterNormalize)
