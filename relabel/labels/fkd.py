"""'fkd': crop-level soft labels stored offline and replayed (FKD; Shen & Xing, ECCV 2022) — beyond the paper.

Instead of a label map per image (ReLabel) or a teacher forward per crop (online KD, Fig. 6), the annotator labels R
random crops of every training image once; the store keeps each crop's coordinates, its flip and the annotator's
top-k softmax. Training replays a stored crop of the image and trains on its stored label, so the label is exactly
the annotator's view of that crop (no pooling of a whole-image map) at no teacher cost during training.

Facts kept from FKD's generator (docs/references.md): the teacher sees each crop resized (bicubic) to its own input
size, optionally flipped; soft label = softmax(logits / T), T = 1; stored as top-k indices + probabilities, the mass
left after the top k spread evenly over the other C − k classes at training ('marginal_smoothing_k5'). Ours: crops
drawn with the target recipe's RandomResizedCrop scale and flip probability (the mini world's digits: no flip), so
the replayed crops are distributed as every other row's crops; epoch e of a run replays crop (e + o_i) mod R of image
i, o_i a per-(seed, image) offset, so a run of R epochs sees every stored crop once. One crop per image per batch
(FKD's recipes replay 4 crops of one decoded image per batch; not done here). Colour jitter (the row's) runs on top of
the replayed crop, seeded per (seed, epoch, image), as for every other row; FKD's own training transform has none.
The teacher's view is the crop resized bicubic, as FKD's generator does, while online KD's teacher (Fig. 6) sees the
student's jittered crop resized bilinear: a difference between the FKD and KD rows beyond the labels' timing.
One store serves every seed of a row (drawn once, seed 0): the seeds vary the order its crops are replayed in, the
init and the jitter, not the crops, so the ledger calls FKD's verdicts conditional on its store.

R and k are the store's (a pretraining row's `label_args`, pretrain/config.py, which its recipe hash names).
The store (CropLabelStore) is a folder of memory-mapped arrays, written into a temporary folder and renamed into
place when complete, and checked against its dataset's paths and file sizes on opening, as relabel.store's is::

    meta.json   settings + dataset fingerprint; paths.txt (sorted: row i is paths[i]); sizes.npy
    boxes.npy   [N, R, 4] float32 (x1, y1, x2, y2) in [0, 1] of the original image (relabel.transforms' box)
    flips.npy   [N, R] uint8;  indices.npy [N, R, k] int16;  probs.npy [N, R, k] float16
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as TF

from relabel.configs import ConfigError
from relabel.labels.base import LabelSource, register_label_source
from relabel.loader import IMAGENET_MEAN, IMAGENET_STD, _mix, load_rgb
from relabel.store import LabelStoreError, LabelStoreMismatch, dataset_fingerprint
from relabel.transforms import RandomHorizontalFlipWithBox, RandomResizedCropWithBox

FORMAT, VERSION = "relabel-croplabel-store", 1
ARGS = ("crops", "k")  # the store's parameters (a pretraining row's label_args)
_ARRAYS = ("boxes", "flips", "indices", "probs")


class CropLabelStore:
    """Per image R stored crops (box, flip) and the annotator's top-k soft label of each; memory-mapped."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        meta_file = self.path / "meta.json"
        if not meta_file.is_file():
            raise LabelStoreError(f"crop-label store {self.path} does not exist or is incomplete; build it with "
                                  "relabel.labels.fkd.build_crop_store.")
        self.meta = json.loads(meta_file.read_text())
        if self.meta.get("format") != FORMAT or not self.meta.get("complete"):
            raise LabelStoreError(f"{self.path} is not a complete crop-label store; delete it and build it again.")
        self._paths = np.array((self.path / "paths.txt").read_text().split("\n")[:self.meta["num_images"]],
                               dtype=np.bytes_)
        self._arr = {}

    def __getstate__(self):  # DataLoader workers re-open the memory maps instead of pickling them
        return {**self.__dict__, "_arr": {}}

    def _a(self, name: str) -> np.ndarray:
        if name not in self._arr:
            self._arr[name] = np.load(self.path / f"{name}.npy", mmap_mode="r")
        return self._arr[name]

    @classmethod
    def open(cls, path, *, dataset_paths: Sequence[str] | None = None,
             dataset_sizes: Sequence[int] | None = None) -> "CropLabelStore":
        """A finished store; with `dataset_paths` (and sizes), checked to be that dataset's."""
        store = cls(path)
        if dataset_paths is not None:
            sizes = dataset_sizes if store.meta["fingerprint_has_sizes"] else None
            if dataset_fingerprint(dataset_paths, sizes) != store.meta["fingerprint"]:
                raise LabelStoreMismatch(f"crop-label store {store.path} ({len(store)} images) was built for other "
                                         f"images than this dataset's {len(dataset_paths)}; rebuild the store for "
                                         "this dataset or point to the one built for it.")
        return store

    def __len__(self) -> int:
        return self.meta["num_images"]

    @property
    def crops(self) -> int:
        return self.meta["crops"]

    @property
    def k(self) -> int:
        return self.meta["k"]

    @property
    def num_classes(self) -> int:
        return self.meta["num_classes"]

    def rows(self, paths: Sequence[str]) -> np.ndarray:
        """Store rows of the given relative paths (a dataset's sample order)."""
        q = np.array([p.encode() for p in paths], dtype=np.bytes_)
        r = np.searchsorted(self._paths, q).clip(max=max(len(self._paths) - 1, 0))
        bad = np.flatnonzero(self._paths[r] != q)
        if len(bad):
            raise LabelStoreMismatch(f"{len(bad)} image(s) are not in crop-label store {self.path}, e.g. "
                                     f"{paths[bad[0]]!r}; rebuild the store for this dataset.")
        return r.astype(np.int64)

    def crop(self, row: int, j: int) -> tuple[np.ndarray, bool]:
        """Crop j of image `row`: its box (x1, y1, x2, y2) in [0, 1] and whether it was mirrored."""
        return np.array(self._a("boxes")[row, j]), bool(self._a("flips")[row, j])

    def soft_label(self, row: int, j: int) -> torch.Tensor:
        """[C] float32: the stored top-k probabilities, the rest of the mass spread evenly over the other C − k
        classes (FKD's marginal smoothing; nothing to spread when k = C)."""
        c = self.num_classes
        idx = torch.from_numpy(np.array(self._a("indices")[row, j], dtype=np.int64))
        p = torch.from_numpy(np.array(self._a("probs")[row, j], dtype=np.float32))
        rest = (1.0 - p.sum()).clamp(min=0.0) / (c - len(idx)) if c > len(idx) else torch.tensor(0.0)
        return torch.full((c,), float(rest)).scatter_(0, idx, p)


def pixel_box(box, width: int, height: int) -> tuple[int, int, int, int]:
    """(top, left, height, width) in pixels of a stored box: exact for the boxes build_crop_store stores."""
    x1, y1, x2, y2 = (float(v) for v in box)
    left, top = round(x1 * width), round(y1 * height)
    return top, left, round(y2 * height) - top, round(x2 * width) - left


def build_crop_store(path, model: torch.nn.Module, root, paths: Sequence[str], sizes: Sequence[int] | None, *,
                     crops: int, k: int, num_classes: int, input_size: int, crop_scale=(0.08, 1.0),
                     hflip: float = 0.0, seed: int = 0, batch_size: int = 256, device=None, amp: bool = False,
                     progress: bool = True) -> dict:
    """Labels `crops` random crops of every image under `root` with `model` (in eval mode) into a new store at
    `path` (written beside it, renamed into place when complete); returns {'images', 'crops', 'seconds'}.
    `amp`: the forwards in bf16 autocast, channels-last, as the trainer runs KD's teacher (about 2x faster on a
    CPU with native bf16; the labels then differ from fp32 ones in bf16 rounding, as KD's do)."""
    import time
    from relabel.progress import bar as progress_bar
    path, root = Path(path), Path(root)
    if path.exists():
        raise LabelStoreError(f"crop-label store {path} exists; delete it to build it again.")
    _sweep_dead_builds(path)
    if not 0 < k <= num_classes:
        raise ConfigError(f"the crop labels keep the top k of {num_classes} classes; k={k} is not in 1..{num_classes}")
    order = sorted(range(len(paths)), key=lambda i: paths[i])
    names = [paths[i] for i in order]
    n = len(names)
    tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        out = {"boxes": np.lib.format.open_memmap(tmp / "boxes.npy", "w+", np.float32, (n, crops, 4)),
               "flips": np.lib.format.open_memmap(tmp / "flips.npy", "w+", np.uint8, (n, crops)),
               "indices": np.lib.format.open_memmap(tmp / "indices.npy", "w+", np.int16, (n, crops, k)),
               "probs": np.lib.format.open_memmap(tmp / "probs.npy", "w+", np.float16, (n, crops, k))}
        device = device or next(model.parameters()).device
        model = model.eval().to(memory_format=torch.channels_last)
        rrc = RandomResizedCropWithBox(input_size, scale=tuple(crop_scale))
        mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
        pending, where = [], []
        t0 = time.time()

        def flush():
            x = torch.stack(pending).to(device).contiguous(memory_format=torch.channels_last)
            with torch.no_grad(), torch.autocast(torch.device(device).type, dtype=torch.bfloat16, enabled=amp):
                logits = model(x).float()
            p, idx = torch.softmax(logits, 1).topk(k, dim=1)  # T = 1 (FKD's default)
            for (r, j), pi, ii in zip(where, p.cpu().numpy(), idx.cpu().numpy()):
                out["probs"][r, j], out["indices"][r, j] = pi, ii
            pending.clear()
            where.clear()

        for r in progress_bar(iterable=range(n), disable=not progress, desc=f"crop labels [{crops} crops, top-{k}]"):
            img = load_rgb(root / names[r], r)
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(_mix(seed, r, 0xFCD))
                for j in range(crops):
                    top, left, h, w = rrc.get_params(img, rrc.scale, rrc.ratio)
                    flip = hflip > 0 and bool(torch.rand(1) < hflip)
                    out["boxes"][r, j] = (left / img.width, top / img.height, (left + w) / img.width,
                                          (top + h) / img.height)
                    out["flips"][r, j] = flip
                    view = TF.resized_crop(img, top, left, h, w, [input_size, input_size],
                                           InterpolationMode.BICUBIC, antialias=True)
                    view = TF.hflip(view) if flip else view
                    pending.append((TF.to_tensor(view) - mean) / std)
                    where.append((r, j))
                    if len(pending) == batch_size:
                        flush()
        if pending:
            flush()
        for a in out.values():
            a.flush()
        del out
        (tmp / "paths.txt").write_text("\n".join(names))
        if sizes is not None:
            np.save(tmp / "sizes.npy", np.asarray([sizes[i] for i in order], dtype=np.int64))
        job = {"images": n, "crops": n * crops, "seconds": time.time() - t0}
        meta = {"format": FORMAT, "version": VERSION, "num_images": n, "crops": crops, "k": k,
                "num_classes": num_classes, "input_size": input_size, "crop_scale": list(crop_scale),
                "hflip": hflip, "seed": seed, "bf16": amp, "temperature": 1.0, "quantisation": "marginal_smoothing",
                "fingerprint": dataset_fingerprint(names, None if sizes is None else [sizes[i] for i in order]),
                "fingerprint_has_sizes": sizes is not None, "job": job, "complete": True}
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1))
        os.replace(tmp, path)  # the store appears complete or not at all
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return job


def _sweep_dead_builds(path: Path) -> None:
    """Remove the temporary folders of earlier builds of `path` whose process is gone (a build killed by SIGKILL
    cannot remove its own); a build in progress in a live process is left alone."""
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        try:
            pid = int(tmp.name.rsplit("-", 1)[1])
            os.kill(pid, 0)
        except ValueError:
            continue  # not a name this module writes
        except ProcessLookupError:
            shutil.rmtree(tmp, ignore_errors=True)
        except PermissionError:
            pass  # another user's live process


class CropReplaySet(torch.utils.data.Dataset):
    """A TrainSet whose crops are replayed from a crop-label store: (image, box, flipped, label, row, soft label).

    The stored crop replaces the transform's RandomResizedCrop and flip; its other stages (colour jitter,
    normalisation, timm's augmentations) run as in the TrainSet, seeded per (seed, epoch, index)."""

    def __init__(self, base, store: CropLabelStore):
        self.base, self.store = base, store
        ts = base.transform.transforms
        crop = next((t for t in ts if isinstance(t, RandomResizedCropWithBox)), None)
        if crop is None:
            raise ConfigError("the 'fkd' labels replay stored crops in place of the transform's "
                              "RandomResizedCropWithBox, but this training transform has none")
        self.size, self.interpolation, self.antialias = list(crop.size), crop.interpolation, crop.antialias
        flip = next((t.p for t in ts if isinstance(t, RandomHorizontalFlipWithBox)), 0.0)
        meta = store.meta
        if [float(v) for v in meta["crop_scale"]] != [float(v) for v in crop.scale] or float(meta["hflip"]) != flip:
            raise LabelStoreMismatch(f"crop-label store {store.path} holds crops of scale {tuple(meta['crop_scale'])} "
                                     f"and flip probability {meta['hflip']}, but this recipe crops at scale "
                                     f"{tuple(crop.scale)} with flip probability {flip}; build the store for it.")
        # the store's row of each sample, by path (a TrainSet built without `rows` has -1 for all)
        self.rows = store.rows([s.path for s in base.samples])
        self.rest = [t for t in ts if not isinstance(t, (RandomResizedCropWithBox, RandomHorizontalFlipWithBox))]
        self.transform = base.transform  # its finish_batch finishes the batch (relabel.loader.collate_train)

    def set_epoch(self, epoch: int) -> None:
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def crop_index(self, i: int) -> int:
        """The stored crop sample i replays this epoch: every crop once in R consecutive epochs."""
        b = self.base
        return (b.epoch + _mix(b.seed, i, 0xFCD) % self.store.crops) % self.store.crops

    def __getitem__(self, i: int):
        b = self.base
        s = b.samples[i]
        img = b._cache[i] if b._cache is not None else load_rgb(b.root / s.path, i)
        row, j = int(self.rows[i]), self.crop_index(i)
        box, flipped = self.store.crop(row, j)
        x = TF.resized_crop(img, *pixel_box(box, img.width, img.height), self.size, self.interpolation,
                            antialias=self.antialias)
        x = TF.hflip(x) if flipped else x
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(_mix(b.seed, b.epoch, i))
            for t in self.rest:
                x = t(x)
        return x, torch.from_numpy(box), flipped, s.label, row, self.store.soft_label(row, j)


@register_label_source("fkd")
class CropLabels(LabelSource):
    needs = ("store",)
    store_kind = "a crop-label store (relabel.labels.fkd.CropLabelStore)"

    @classmethod
    def describe(cls, train: dict) -> str:
        return "FKD crop labels"

    def dataset(self, train_set):
        st = self.store
        if not isinstance(st, CropLabelStore):
            raise ValueError(f"label 'fkd' reads a crop-label store (relabel.labels.fkd), got {type(st).__name__}")
        if st.num_classes != self.cfg.num_classes:
            raise LabelStoreMismatch(f"crop-label store {st.path} holds labels of {st.num_classes} classes, but the "
                                     f"recipe trains {self.cfg.num_classes}; build the store for this recipe.")
        return CropReplaySet(train_set, st)

    def target(self, x, labels, extra, device):
        return extra[0].to(device, non_blocking=True)
