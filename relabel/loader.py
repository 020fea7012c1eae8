"""Training data: image samples with their crop box, flip flag and store row; deterministic, resumable order.

Every random choice of the input pipeline is a pure function of (seed, epoch, sample index): the epoch's order
comes from a generator seeded by (seed, epoch) and each sample's augmentation from a generator seeded by
(seed, epoch, index). So a run killed at step s and resumed produces exactly the batches of an uninterrupted run,
whatever the number of loader workers, and under `torchrun` each rank takes its own slice of the same order.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import simplejpeg
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler, default_collate
from torchvision import transforms as T

from relabel.configs import ConfigError
from relabel.transforms import (BatchedColorJitterNormalize, ComposeWithBox, Pending, RandomHorizontalFlipWithBox,
                               RandomResizedCropWithBox, collate_pending)

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Sample:
    path: str  # relative to the dataset root; the key of the label-map store
    label: int


class BadImageError(FileNotFoundError):
    """An image file that exists but cannot be decoded (truncated, corrupt, not an image): one sentence naming it.

    A FileNotFoundError so that every driver already prints it as one sentence (`relabel.launch.user_errors`,
    the evaluation CLIs): for a run, an image it cannot read is as missing as one that is not there. Raised inside
    a DataLoader worker, it reaches the main process as `BadImageError("Caught BadImageError in DataLoader worker
    process 0.\\nOriginal Traceback ...")` (torch's ExceptionWrapper.reraise); the constructor keeps only the
    sentence, the traceback's last line, so the worker's error reads exactly like the in-process one."""

    def __init__(self, message: str):
        if message.startswith("Caught ") and "Original Traceback" in message:
            last = message.rstrip().splitlines()[-1]
            message = last.split(f"{type(self).__name__}: ", 1)[-1]
        super().__init__(message)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# JPEG colour spaces that libjpeg-turbo through simplejpeg decodes to RGB bit-identically to PIL's decode (+ convert
# for grayscale): checked over subsampling 4:4:4/4:2:2/4:2:0, baseline and progressive, in tests/test_decode.py. CMYK
# and YCCK (a few ImageNet train files) differ by one level after PIL's conversion, so they stay with PIL.
_FAST_JPEG = frozenset({"YCbCr", "Gray"})
_JPEG_MAGIC = b"\xff\xd8\xff"
_READ = threading.local()  # a reusable read buffer per thread: a fresh bytes object per file costs ~0.1 ms (faults)
_KEEP_BUFFER = 64 << 20  # a larger file gets a one-off buffer, so no thread keeps a huge one


def _read_jpeg(path) -> memoryview | None:
    """A JPEG's bytes in this thread's reusable buffer (valid until this thread's next call); None for any other
    file (read no further than its first 3 bytes)."""
    with open(path, "rb", buffering=0) as f:
        if f.read(3) != _JPEG_MAGIC:
            return None
        need = os.fstat(f.fileno()).st_size + 1  # + 1: a read that fills the buffer means the file grew; read on
        buf = getattr(_READ, "buf", None)
        if buf is None or len(buf) < need:
            buf = bytearray(max(need, 1 << 20))
            if need <= _KEEP_BUFFER:
                _READ.buf = buf
        view, n = memoryview(buf), 3
        view[:3] = _JPEG_MAGIC
        while k := f.readinto(view[n:]):
            n += k
            if n == len(buf):
                return memoryview(bytes(view[:n]) + f.read())
        return view[:n]


def load_rgb(path: str | os.PathLike, index: int | None = None, *, transient: bool = False):
    """The image at `path` as RGB (an RGB file, most JPEGs, as decoded, without `convert`'s copy of every pixel);
    a file PIL cannot decode is a BadImageError naming it (and its sample index).

    A JPEG in YCbCr or grayscale is read into a reusable buffer and decoded by simplejpeg (libjpeg-turbo's TurboJPEG
    API) into the same pixels PIL gives, ~11% less CPU than PIL's open + decode (1.39 against 1.57 ms per
    ImageNet-like file, issue 27); anything else (PNG, CMYK, a file simplejpeg refuses, a truncated one) goes
    through PIL, which opens it again by path (3 bytes read twice: PIL's errors then name the path) and names what
    is wrong.

    `transient=True` (the training loader's reads): such a JPEG comes back as a read-only ``[H, W, 3]`` uint8 array
    decoded into this thread's reusable output buffer, valid only until this thread's next transient read, so the
    caller must copy what it keeps. `RandomResizedCropWithBox` copies its crop out and resizes it with torch's uint8
    kernel (`relabel.transforms.resize_u8`, within 2 levels of PIL's resize), which skips building the whole image
    in PIL, cropping it and PIL's slower resize (issue 27), and the page faults of a fresh output array per file.
    Every other image is a PIL image, as without it."""
    try:
        data = _read_jpeg(path)  # a JPEG, whatever its name says
        if data is not None:
            try:
                h, w, colorspace, _ = simplejpeg.decode_jpeg_header(data)
                # a huge image goes to PIL, whose MAX_IMAGE_PIXELS check calls it a decompression bomb
                if colorspace in _FAST_JPEG and h * w <= (Image.MAX_IMAGE_PIXELS or h * w):
                    if not transient:
                        return Image.fromarray(simplejpeg.decode_jpeg(data, colorspace="RGB"))
                    out = simplejpeg.decode_jpeg(data, colorspace="RGB", buffer=_decode_buffer(h * w * 3))
                    out.flags.writeable = False
                    return out
            except ValueError:  # strict: a damaged or unusual JPEG; PIL decides whether it can be read
                pass
        with Image.open(path) as im:
            im.load()
            return im if im.mode == "RGB" else im.convert("RGB")
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:  # PIL's ways of saying "corrupt"
        at = f" (sample {index})" if index is not None else ""
        if isinstance(e, OSError) and e.errno is not None:  # the file system's: gone, no permission, an I/O error
            raise BadImageError(f"image {path}{at} cannot be read ({e.strerror}); restore it (the data changed "
                                "since the run listed it?) or fix its permissions.") from None
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BadImageError(f"image {path}{at} cannot be decoded ({why}); remove or replace it.") from None


def _decode_buffer(size: int) -> memoryview:
    """`size` writable bytes of this thread's reusable decode buffer (a larger image than _KEEP_BUFFER gets its own)."""
    buf = getattr(_READ, "out", None)
    if buf is None or len(buf) < size:
        buf = bytearray(max(size, 4 << 20))
        if size <= _KEEP_BUFFER:
            _READ.out = buf
    return memoryview(buf)[:size]


def train_transform(size: int, scale=(0.08, 1.0), color_jitter: float = 0.4, hflip: float = 0.5,
                    batched: bool = True) -> ComposeWithBox:
    """RandomResizedCrop + flip (+ colour jitter): the paper's standard augmentation, returning the crop box.

    `hflip` is the flip probability; the mini world sets it to 0 because its objects are digits, which a mirror
    turns into other shapes (a flipped 2 is no 2), unlike ImageNet's objects. `batched`: colour jitter and
    normalisation run per batch (BatchedColorJitterNormalize: the same draws and arithmetic, done in the collate
    by `collate_train`); False gives torchvision's per-image ColorJitter → ToTensor → Normalize, whose images
    other per-image transforms (timm's RandAugment) can still edit."""
    ts = [RandomResizedCropWithBox(size, scale=tuple(scale))]
    if hflip > 0:
        ts.append(RandomHorizontalFlipWithBox(hflip))
    if batched:
        return ComposeWithBox(ts + [BatchedColorJitterNormalize(color_jitter, color_jitter, color_jitter,
                                                                IMAGENET_MEAN, IMAGENET_STD)])
    if color_jitter > 0:
        ts.append(T.ColorJitter(color_jitter, color_jitter, color_jitter))
    return ComposeWithBox(ts + [T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def collate_train(samples: list, transform=None, finish: bool = True):
    """TrainSet items as a batch: images still `Pending` (the batched jitter of `train_transform`) are stacked as
    8-bit pixels with their jitter draws (`collate_pending`), everything else by `default_collate`; then the
    batched stages of their transform run here, unless `finish=False`, which leaves the batch `Pending` for the
    trainer to finish on the training device after the copy (`relabel.train.train`'s `finish_on`)."""
    if isinstance(samples[0][0], Pending):
        x = collate_pending([s[0] for s in samples])
        rest = default_collate([s[1:] for s in samples])
    else:
        x, *rest = default_collate(samples)
    fin = getattr(transform, "finish_batch", None)
    return (fin(x) if finish and fin is not None else x, *rest)


def eval_transform(size: int, crop_ratio: float = 0.875) -> T.Compose:
    """Resize to size/crop_ratio, centre crop `size` (ImageNet: Resize 256 + CenterCrop 224)."""
    return T.Compose([T.Resize(round(size / crop_ratio)), T.CenterCrop(size), T.ToTensor(),
                      T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def _mix(*xs: int) -> int:
    """A 63-bit seed from a few integers (SplitMix64-style), so neighbouring (epoch, index) pairs decorrelate."""
    h = 0x9E3779B97F4A7C15
    for x in xs:
        h = (h ^ (int(x) & 0xFFFFFFFFFFFFFFFF)) * 0xBF58476D1CE4E5B9 & 0xFFFFFFFFFFFFFFFF
        h ^= h >> 31
    return h & 0x7FFFFFFFFFFFFFFF


class TrainSet(Dataset):
    """(image, box[4], flipped, label, store row) per sample, augmented deterministically per (seed, epoch, index).

    `rows[i]` is sample i's row in a label-map store (or -1 without one); the trainer reads the maps of a whole
    batch at once with `LabelMapStore.read_batch`, so no dense map is ever built here. `cache=True` keeps the
    decoded images in memory (the mini world fits in tens of MB).
    """

    def __init__(self, root: str | os.PathLike, samples: Sequence[Sample], transform: ComposeWithBox, seed: int,
                 rows: Sequence[int] | None = None, cache: bool = False):
        self.root, self.samples, self.transform, self.seed = Path(root), list(samples), transform, seed
        self.rows = np.asarray(rows if rows is not None else [-1] * len(self.samples), dtype=np.int64)
        self.epoch = 0
        self._cache = [load_rgb(self.root / s.path, i) for i, s in enumerate(self.samples)] if cache else None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int):
        s = self.samples[i]
        # transient: a JPEG stays an array in a reused buffer until the crop copies its own pixels out of it
        img = self._cache[i] if self._cache is not None else load_rgb(self.root / s.path, i, transient=True)
        with torch.random.fork_rng(devices=[]):  # torchvision draws from the global RNG; keep the caller's intact
            # the CPU generator only: torch.manual_seed would also queue lazy CUDA/XPU/MTIA seeding, which formats
            # a Python stack trace per call (0.6 ms a sample, ~40% of a mini training step)
            torch.default_generator.manual_seed(_mix(self.seed, self.epoch, i))
            x, box, flipped = self.transform(img)
        return x, box, flipped, s.label, int(self.rows[i])


class EvalSet(Dataset):
    """(image, index) for evaluation; labels live with the evaluator (single labels, ReaL sets, ...)."""

    def __init__(self, root: str | os.PathLike, paths: Sequence[str], transform, cache: bool = False):
        self.root, self.paths, self.transform = Path(root), list(paths), transform
        self._cache = [load_rgb(self.root / p, i) for i, p in enumerate(self.paths)] if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        img = self._cache[i] if self._cache is not None else load_rgb(self.root / self.paths[i], i)
        return self.transform(img), i


class ResumableSampler(Sampler):
    """This rank's sample indices of one epoch, from a given batch on: a seeded permutation, drop-last batches.

    The global batch `batch_size` is split evenly over `world` ranks; rank r takes positions r, r+world, ... of
    each global batch, so the union over ranks is exactly the single-process batch.
    """

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1):
        if batch_size % world:
            raise ConfigError(f"the global batch size {batch_size} is not divisible by the {world} ranks; pick a "
                              f"multiple of {world} (e.g. --set batch_size={max(world, batch_size // world * world)})")
        if n < batch_size:
            fit = n // 2 // world * world or n // world * world
            raise ConfigError(f"the training set has {n} images, fewer than one batch of {batch_size}; "
                              + (f"lower the batch size (e.g. --set batch_size={fit})" if fit else
                                 f"it needs at least one image per rank ({world})"))
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.epoch, self.start_batch = 0, 0

    @property
    def batches_per_epoch(self) -> int:
        return self.n // self.batch_size

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def _order(self) -> np.ndarray:
        g = torch.Generator().manual_seed(_mix(self.seed, self.epoch, 0x5A))
        return torch.randperm(self.n, generator=g).numpy()[: self.batches_per_epoch * self.batch_size]

    def __iter__(self):
        order = self._order().reshape(self.batches_per_epoch, self.batch_size)[self.start_batch:]
        return iter(order[:, self.rank::self.world].reshape(-1).tolist())

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * (self.batch_size // self.world)


# a logging interval whose data wait exceeds this fraction of its steps warns (once a run)
DATA_WAIT_WARN = 0.10


class DataWait:
    """How long the training loop waits for the loader: per batch, the time `next()` blocks (the data wait) and
    the time from one batch's request to the next (the step, data wait included), summed per logging interval
    and over the run. The first interval (worker start-up) never warns; a later one whose wait exceeds
    DATA_WAIT_WARN of its step time warns once a run, where the loader can hold a device back: loader workers that
    run beside the step, or an accelerator that idles while the batch is made. In-process loading on a CPU
    (workers=0, every mini run) makes the batch and then the step on the same cores: its wait is part of the work,
    not a stall another setting would remove, so it never warns; its fraction is recorded all the same."""

    def __init__(self, workers: int, device: torch.device | None = None):
        self.workers, self.total_s = workers, 0.0
        self.can_hold_back = workers > 0 or (device is not None and device.type != "cpu")
        self._wait = self._step = 0.0
        self._n, self._intervals, self._warned = 0, 0, False

    def timed(self, batches):
        it, last, wait = iter(batches), None, 0.0
        while True:
            t0 = time.perf_counter()
            if last is not None:  # the previous step is over: its wait and its whole time count together
                self._step += t0 - last
                self._wait += wait
                self._n += 1
            try:
                b = next(it)
            except StopIteration:
                return
            wait, last = time.perf_counter() - t0, t0
            self.total_s += wait
            yield b

    def interval(self) -> tuple[float, float]:
        """(data wait, step time) in ms per step since the last call; the current step counts in the next."""
        n = max(self._n, 1)
        out = (1000.0 * self._wait / n, 1000.0 * self._step / n) if self._n else (0.0, 0.0)
        self._wait = self._step = 0.0
        self._n = 0
        self._intervals += 1
        return out

    def warn(self, wait_ms: float, step_ms: float) -> bool:
        if (not self.can_hold_back or self._warned or self._intervals < 2 or step_ms <= 0
                or wait_ms <= DATA_WAIT_WARN * step_ms):
            return False
        self._warned = True
        return True

    def warning(self, wait_ms: float, step_ms: float) -> str:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return (f"warning: the input pipeline holds the training back: {wait_ms:.0f} ms of each {step_ms:.0f} ms "
                f"step ({100 * wait_ms / step_ms:.0f}%) waiting for data, with {self.workers} loader workers on "
                f"{cores} cores{' (loading in the training process)' if not self.workers else ''}; more loader workers "
                "(--set workers=N) on free cores would feed it faster")
