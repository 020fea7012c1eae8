"""LabelMapStore: every image's top-k label map in one memory-mapped store, keyed by relative image path.

A store is a directory (one store per dataset, never a file per image; the official release is 1.28M
separate ``.pt`` files)::

    meta.json     settings + provenance (annotator, input size, grid, k, dtypes, class-list hash, dataset
                  fingerprint) and ``complete``; written last, atomically
    paths.txt     relative image paths, one per line, SORTED: row i of every array is paths[i]
    scores.npy    [N, k, h, w] float32 | float16 | uint8
    quant.npy     [N, 2] float32 (offset, step) per image, uint8 stores only
    indices.npy   [N, row_bytes] uint8 (set coding) or [N, k, h, w] uint8/16/32 (plain coding)
    sizes.npy     [N] int64 file sizes, when the fingerprint includes them
    written.npy   [N] uint8, 1 once a row is written: lets sharded/resumed annotation fill rows in any order

Sizes (ImageNet-1k, k=5, 15×15, bytes of map data per image; the official fp32 ``.pt`` is 9000 B):
fp32 5710, fp16 3460, 8-bit 2343 — see ``bench/bench_pooling.py``; paths and flags add ~35 B on disk.

8-bit quantisation is affine per image: ``step = (max - min) / 255`` over the image's k·h·w scores,
``q = round((s - min) / step)``; the stored float32 offset keeps the absolute level (softmax is NOT shift
invariant here, because absent classes sit at logit 0). Error bound: ``|s' - s| <= step / 2`` (+ float32
rounding), i.e. ≤ 0.2% of the image's score range.

Index "set" coding: the top-k classes at a location are distinct and their ranks are implied by the
stored scores, so we store them as a k-subset of C classes — one combinatorial-number-system code of
``ceil(log2 C(C, k))`` bits (43 bits for C=1000, k=5, vs 80 for five uint16), bit-packed per image, with the
scores kept in ascending-class order. ``read(rank_order=True)`` restores best-first order (ties in the
stored scores are broken by class id). Used when the code fits 57 bits, else "plain" smallest-uint indices.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from relabel.atomic_write import MARGIN, check_free_space, full_disk_sentence, human, is_disk_full, reserve
from relabel.records import write_json_atomic

__all__ = [
    "SCORE_DTYPES", "LabelStoreError", "LabelStoreMismatch", "StoreMeta", "LabelMapStore", "LabelMapWriter",
    "list_images", "file_sizes", "dataset_fingerprint", "class_list_hash",
]

FORMAT, VERSION = "relabel-labelmap-store", 1
SCORE_DTYPES = ("float32", "float16", "uint8")
IMAGE_EXTS = (".jpeg", ".jpg", ".png", ".bmp", ".webp")
_MAX_SET_BITS = 57  # decode reads an 8-byte window at any bit offset: 57 + 7 <= 64


class LabelStoreError(ValueError):
    """A label-map store that is missing, incomplete or was created with other settings."""


class LabelStoreMismatch(LabelStoreError):
    """A label-map store that does not belong to the dataset (or class list) it is opened with."""


# ----------------------------------------------------------------------------------------------- datasets
def list_images(root: str | os.PathLike, exts: Iterable[str] = IMAGE_EXTS) -> list[str]:
    """Sorted POSIX paths, relative to ``root``, of the image files below it."""
    root, exts = Path(root), {e.lower() for e in exts}
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist; check the dataset path.")
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() in exts and p.is_file())


def file_sizes(root: str | os.PathLike, paths: Sequence[str]) -> list[int]:
    """Byte sizes of ``root/path`` for each path (the optional second half of the dataset fingerprint)."""
    return [os.path.getsize(os.path.join(root, p)) for p in paths]


def dataset_fingerprint(paths: Sequence[str], sizes: Sequence[int] | None = None) -> str:
    """SHA-256 over the sorted relative paths (and their file sizes, if given)."""
    h = hashlib.sha256()
    pairs = sorted(zip(paths, sizes)) if sizes is not None else [(p, None) for p in sorted(paths)]
    for p, s in pairs:
        h.update((p if s is None else f"{p}\t{s}").encode() + b"\n")
    return h.hexdigest()


def class_list_hash(class_names: Sequence[str]) -> str:
    """SHA-256 of the ordered class list (class index i = class_names[i])."""
    return hashlib.sha256("\n".join(class_names).encode()).hexdigest()


# ----------------------------------------------------------------------------------------------- codecs
def _plain_index_dtype(num_classes: int) -> np.dtype:
    for dt in (np.uint8, np.uint16, np.uint32):
        if num_classes - 1 <= np.iinfo(dt).max:
            return np.dtype(dt)
    raise LabelStoreError(f"{num_classes} classes do not fit a uint32 index.")


class _SetCodec:
    """k distinct class ids per location <-> one combinadic code, bit-packed per image row."""

    def __init__(self, num_classes: int, k: int, locations: int):
        self.k, self.locations = k, locations
        self.bits = max((math.comb(num_classes, k) - 1).bit_length(), 1)
        self.row_bytes = -(-locations * self.bits // 8)
        # table[i][c] = C(c, i + 1): the code of ascending ids c_0 < … < c_{k-1} is sum_i table[i][c_i].
        self.table = np.array([[math.comb(c, i + 1) for c in range(num_classes)] for i in range(k)], np.uint64)
        self.table_ext = np.concatenate([self.table, np.full((k, 1), np.iinfo(np.uint64).max, np.uint64)], 1)
        off = np.arange(locations, dtype=np.int64) * self.bits
        self._gather = (off >> 3)[:, None] + np.arange(8)
        self._shift = (off & 7).astype(np.uint64)
        self._mask = np.uint64((1 << self.bits) - 1)

    def encode(self, idx: np.ndarray) -> np.ndarray:
        """``idx [n, k, L]`` ascending along k -> packed codes ``[n, row_bytes]`` uint8."""
        codes = np.zeros(idx.shape[0::2], np.uint64)
        for i in range(self.k):
            codes += self.table[i][idx[:, i]]
        bits = ((codes[..., None] >> np.arange(self.bits, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
        return np.packbits(bits.reshape(len(codes), -1), axis=1, bitorder="little")

    def decode(self, packed: np.ndarray) -> np.ndarray:
        """Packed codes ``[n, row_bytes]`` -> ascending class ids ``[n, k, L]`` int64."""
        n = packed.shape[0]
        padded = np.zeros((n, self.row_bytes + 8), np.uint8)
        padded[:, : self.row_bytes] = packed
        window = np.ascontiguousarray(padded[:, self._gather]).view("<u8")[..., 0]  # [n, L]
        codes = (window >> self._shift) & self._mask
        out = np.empty((n, self.k, self.locations), np.int64)
        for i in range(self.k - 1, -1, -1):
            # Largest c with C(c, i+1) <= code. A binary search (np.searchsorted) costs ~13 ms per 256 maps;
            # instead invert C(c, m) ~ (c - (m-1)/2)^m / m! in float64 — by AM-GM the estimate is the answer
            # or one below it (checked at every step boundary in tests) — then one table look-up fixes it.
            m, tab, ext = i + 1, self.table[i], self.table_ext[i]
            if m == 1:
                c = codes.astype(np.int64)
            else:
                est = np.floor((codes.astype(np.float64) * math.factorial(m)) ** (1.0 / m) + (m - 1) / 2)
                c = np.clip(est, i, len(tab) - 1).astype(np.int64)
                c += ext[c + 1] <= codes
                bad = (tab[c] > codes) | (ext[c + 1] <= codes)
                if bad.any():  # safety net for float rounding; never taken in tests
                    c[bad] = np.searchsorted(tab, codes[bad], side="right") - 1
            codes -= tab[c]
            out[:, i] = c
        return out


@dataclass(frozen=True)
class StoreMeta:
    """Everything needed to read a store and to know where its maps came from."""

    num_images: int
    num_classes: int
    k: int
    grid: tuple[int, int]
    score_dtype: str
    index_coding: str  # "set" or "plain"
    annotator: str = ""
    input_size: int | None = None
    class_hash: str | None = None
    fingerprint: str = ""
    fingerprint_has_sizes: bool = False
    complete: bool = False
    format: str = FORMAT
    version: int = VERSION

    def settings(self) -> dict:
        d = asdict(self)
        d.pop("complete")
        return d


def _read_meta(path: Path) -> StoreMeta:
    f = path / "meta.json"
    if not f.is_file():
        raise LabelStoreError(f"{path} is not a label-map store (no meta.json); create it with LabelMapStore.create "
                              "or import_official.")
    d = json.loads(f.read_text())
    if d.get("format") != FORMAT or d.get("version") != VERSION:
        raise LabelStoreError(f"{path} holds format {d.get('format')!r} v{d.get('version')}, not {FORMAT} v{VERSION}; "
                              "rebuild it with this version of the code.")
    d["grid"] = tuple(d["grid"])
    return StoreMeta(**d)


class _Arrays:
    """The store's memory maps, opened lazily (and re-opened after pickling into DataLoader workers)."""

    def __init__(self, path: Path, meta: StoreMeta, mode: str):
        self.path, self.meta, self.mode = path, meta, mode
        self._mm: dict | None = None
        self._codec: _SetCodec | None = None

    def __getstate__(self):
        return {**self.__dict__, "_mm": None, "_codec": None}

    @property
    def codec(self) -> _SetCodec:
        if self._codec is None:
            self._codec = _SetCodec(self.meta.num_classes, self.meta.k, self.meta.grid[0] * self.meta.grid[1])
        return self._codec

    def __getitem__(self, name: str) -> np.ndarray:
        if self._mm is None:
            names = ["scores", "indices", "written"] + (["quant"] if self.meta.score_dtype == "uint8" else [])
            self._mm = {n: np.load(self.path / f"{n}.npy", mmap_mode=self.mode) for n in names}
        return self._mm[name]


# ----------------------------------------------------------------------------------------------- store
class LabelMapStore:
    """Read side of a finished store: ``read`` one map, ``read_batch`` many as torch tensors for LabelPooling."""

    def __init__(self, path: str | os.PathLike, *, _allow_incomplete: bool = False):
        self.path = Path(path)
        self.meta = _read_meta(self.path)
        self._arr = _Arrays(self.path, self.meta, "r")
        self._paths = np.array((self.path / "paths.txt").read_bytes().split(b"\n")[:-1] or [], dtype=np.bytes_)
        if not self.meta.complete and not _allow_incomplete:
            done = int(self._arr["written"].sum())
            raise LabelStoreError(
                f"label store {self.path} is incomplete ({done} of {self.meta.num_images} maps written); "
                "finish (resume) the annotation or import job that fills it before reading it."
            )

    # -- creation ------------------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | os.PathLike, paths: Sequence[str], *, num_classes: int, k: int,
               grid: tuple[int, int] = (15, 15), score_dtype: str = "uint8", annotator: str = "",
               input_size: int | None = None, class_names: Sequence[str] | None = None,
               sizes: Sequence[int] | None = None, index_coding: str = "auto") -> "LabelMapWriter":
        """Allocate a store for ``paths`` and return its writer; an existing store with identical settings is
        resumed (its written rows are kept), one with other settings is refused."""
        if score_dtype not in SCORE_DTYPES:
            raise LabelStoreError(f"score dtype {score_dtype!r} is not one of {', '.join(SCORE_DTYPES)}.")
        if not 1 <= k <= num_classes:
            raise LabelStoreError(f"k must be between 1 and num_classes ({num_classes}), got {k}.")
        bits = max((math.comb(num_classes, k) - 1).bit_length(), 1)
        if index_coding == "auto":
            index_coding = "set" if bits <= _MAX_SET_BITS else "plain"
        if index_coding not in ("set", "plain") or (index_coding == "set" and bits > _MAX_SET_BITS):
            raise LabelStoreError(f"index coding {index_coding!r} is not possible for C={num_classes}, k={k}; "
                                  "use 'plain' or 'auto'.")
        order = sorted(range(len(paths)), key=paths.__getitem__)
        spaths = [paths[i] for i in order]
        if any("\n" in p for p in spaths) or len(set(spaths)) != len(spaths):
            raise LabelStoreError("image paths must be unique and contain no newline.")
        meta = StoreMeta(
            num_images=len(spaths), num_classes=num_classes, k=k, grid=(int(grid[0]), int(grid[1])),
            score_dtype=score_dtype, index_coding=index_coding, annotator=annotator, input_size=input_size,
            class_hash=class_list_hash(class_names) if class_names is not None else None,
            fingerprint=dataset_fingerprint(paths, sizes), fingerprint_has_sizes=sizes is not None,
        )
        path = Path(path)
        if (path / "meta.json").is_file():
            old = _read_meta(path)
            if old.settings() != meta.settings():
                diff = [key for key, v in meta.settings().items() if old.settings().get(key) != v]
                raise LabelStoreError(f"a label store with other settings ({', '.join(diff)}) already exists at "
                                      f"{path}; delete it or choose another path.")
            return LabelMapWriter(path)
        n, (h, w) = len(spaths), meta.grid
        paths_txt = b"".join(p.encode() + b"\n" for p in spaths)
        arrays = {"scores": (np.dtype(score_dtype), (n, k, h, w))}
        if score_dtype == "uint8":
            arrays["quant"] = (np.dtype(np.float32), (n, 2))
        if index_coding == "set":
            arrays["indices"] = (np.dtype(np.uint8), (n, _SetCodec(num_classes, k, h * w).row_bytes))
        else:
            arrays["indices"] = (_plain_index_dtype(num_classes), (n, k, h, w))
        arrays["written"] = (np.dtype(np.uint8), (n,))
        need = (len(paths_txt) + (8 * n if sizes is not None else 0) + 4096 * (len(arrays) + 2)
                + sum(dt.itemsize * math.prod(shape) for dt, shape in arrays.values()))
        new_dir = not path.exists()
        path.mkdir(parents=True, exist_ok=True)
        made: list[Path] = []
        try:
            check_free_space(path, need + MARGIN, f"label store {path}", LabelStoreError)
            made.append(path / "paths.txt")
            made[-1].write_bytes(paths_txt)
            if sizes is not None:
                made.append(path / "sizes.npy")
                np.save(made[-1], np.asarray([sizes[i] for i in order], np.int64))
            for name, (dt, shape) in arrays.items():
                made.append(path / f"{name}.npy")
                np.lib.format.open_memmap(made[-1], "w+", dt, shape).flush()
                # every block now: writes through the memory map can never meet a full disk (a bus error) later
                reserve(made[-1])
            made.append(path / "meta.json")
            write_json_atomic(made[-1], asdict(meta))  # last: its presence marks a fully allocated store
        except (OSError, LabelStoreError) as e:
            for f in made + list(path.glob("meta.json.*.tmp")):  # nothing half-allocated is left to pass for a store
                f.unlink(missing_ok=True)
            if new_dir:
                shutil.rmtree(path, ignore_errors=True)
            if isinstance(e, OSError) and is_disk_full(e):
                raise LabelStoreError(full_disk_sentence(f"label store {path} ({human(need)})", path.parent, e,
                                                         "nothing of it was kept")) from None
            raise
        return LabelMapWriter(path)

    @classmethod
    def open(cls, path: str | os.PathLike, *, dataset_paths: Sequence[str] | None = None,
             dataset_sizes: Sequence[int] | None = None, class_names: Sequence[str] | None = None) -> "LabelMapStore":
        """Open a finished store; with ``dataset_paths`` (and ``class_names``), check it belongs to that dataset."""
        if not Path(path).exists():
            raise LabelStoreError(f"label store {path} does not exist; build it with the annotation job or "
                                  "import_official first.")
        store = cls(path)
        if dataset_paths is not None:
            store.check_dataset(dataset_paths, dataset_sizes)
        if class_names is not None and store.meta.class_hash not in (None, class_list_hash(class_names)):
            raise LabelStoreMismatch(f"label store {store.path} was built for a different class list than the one "
                                     "given (class-list hash differs); use the store made with these classes.")
        return store

    def check_dataset(self, paths: Sequence[str], sizes: Sequence[int] | None = None) -> None:
        """Raise :class:`LabelStoreMismatch` (one sentence: counts, first differing path, fix) unless the
        dataset's images are exactly the store's."""
        if self.meta.fingerprint_has_sizes and sizes is None:
            raise LabelStoreMismatch(f"label store {self.path} fingerprints file sizes too; pass dataset_sizes "
                                     "(relabel.store.file_sizes).")
        use = sizes if self.meta.fingerprint_has_sizes else None
        if dataset_fingerprint(paths, use) == self.meta.fingerprint:
            return
        ds = sorted(paths)
        st = [p.decode() for p in self._paths]
        fix = "rebuild the store for this dataset or point to the store that was built for it"
        for i, (a, b) in enumerate(zip(st, ds)):
            if a != b:
                where = f"{a!r} is in the store but not the dataset" if a < b else f"{b!r} is in the dataset but not the store"
                break
        else:
            if len(st) != len(ds):
                longer = st if len(st) > len(ds) else ds
                where = f"{longer[min(len(st), len(ds))]!r} is only in the {'store' if longer is st else 'dataset'}"
            else:
                old = np.load(self.path / "sizes.npy")
                by_path = dict(zip(paths, use))
                i = next(i for i, p in enumerate(st) if by_path[p] != old[i])
                where = f"{st[i]!r} is {by_path[st[i]]} bytes now but was {old[i]} bytes when annotated"
        raise LabelStoreMismatch(f"label store {self.path} ({len(st)} images) does not match the dataset "
                                 f"({len(ds)} images): {where}; {fix}.")

    # -- reading ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.meta.num_images

    @property
    def paths(self) -> list[str]:
        return [p.decode() for p in self._paths]

    def rows(self, paths: Sequence[str]) -> np.ndarray:
        """Store rows of the given relative paths (e.g. a dataset's sample order)."""
        q = np.array([p.encode() for p in paths], dtype=np.bytes_)
        r = np.searchsorted(self._paths, q).clip(max=max(len(self._paths) - 1, 0))
        bad = np.flatnonzero(self._paths[r] != q) if len(self._paths) else np.arange(len(q))
        if len(bad):
            raise LabelStoreMismatch(f"{len(bad)} image(s) are not in label store {self.path}, e.g. "
                                     f"{paths[bad[0]]!r}; rebuild the store for this dataset.")
        return r.astype(np.int64)

    def _decode(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        m, a = self.meta, self._arr
        s = a["scores"][rows]
        if m.score_dtype == "uint8":
            q = a["quant"][rows]
            s = s.astype(np.float32) * q[:, 1, None, None, None] + q[:, 0, None, None, None]
        else:
            s = s.astype(np.float32, copy=False)
        if m.index_coding == "set":
            idx = a.codec.decode(a["indices"][rows]).reshape(s.shape)
        else:
            idx = a["indices"][rows].astype(np.int64)
        return s, idx

    def read(self, key: int | str, rank_order: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """One image's map: ``(scores float32 [k, h, w], indices int64 [k, h, w])``, best first if ``rank_order``."""
        row = int(self.rows([key])[0]) if isinstance(key, str) else int(key)
        s, idx = self._decode(np.array([row]))
        s, idx = s[0], idx[0]
        if rank_order:
            order = np.argsort(-s, axis=0, kind="stable")
            s, idx = np.take_along_axis(s, order, 0), np.take_along_axis(idx, order, 0)
        return s, idx

    def read_batch(self, rows: Sequence[int] | np.ndarray, device: torch.device | str | None = None,
                   compact: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Maps of many rows for LabelPooling: ``(scores [B, k, h, w] float32, indices [B, k, h, w] int64)``.

        Order along k is unspecified (pooling does not need ranks); use :meth:`read` for best-first order.
        ``compact`` returns int16/int32 indices (a quarter/half of the host→device bytes; pooling widens them).
        """
        s, idx = self._decode(np.asarray(rows, dtype=np.int64))
        if compact:
            idx = idx.astype(np.int16 if self.meta.num_classes <= 2**15 else np.int32)
        return torch.from_numpy(s).to(device), torch.from_numpy(idx).to(device)

    def bytes_per_image(self) -> dict[str, float]:
        """``payload``: map data per image (scores + indices + quantisation); ``on_disk``: all files / N."""
        m, a = self.meta, self._arr
        n = max(m.num_images, 1)
        names = ["scores", "indices"] + (["quant"] if m.score_dtype == "uint8" else [])
        payload = sum(a[x][0].nbytes for x in names) if m.num_images else 0
        disk = sum(f.stat().st_size for f in self.path.iterdir() if f.is_file())
        return {"payload": float(payload), "on_disk": disk / n}


class LabelMapWriter:
    """Fills a store's rows in any order (sharded or resumed annotation), then :meth:`finalize` marks it done."""

    def __init__(self, path: str | os.PathLike):
        self.store = LabelMapStore(path, _allow_incomplete=True)
        self.meta = self.store.meta
        self._arr = _Arrays(self.store.path, self.meta, "r+")
        names = ["scores", "indices", "written"] + (["quant"] if self.meta.score_dtype == "uint8" else [])
        try:  # a store allocated sparsely (by older code) gets its blocks now, not as a bus error mid-run
            for name in names:
                reserve(self.store.path / f"{name}.npy")
        except OSError as e:
            if not is_disk_full(e):
                raise
            raise LabelStoreError(full_disk_sentence(f"label store {self.store.path}", self.store.path, e,
                                                     "the maps written so far are kept")) from None

    def rows(self, paths: Sequence[str]) -> np.ndarray:
        return self.store.rows(paths)

    def missing(self) -> np.ndarray:
        """Rows not written yet (what a resumed job still has to do)."""
        return np.flatnonzero(self._arr["written"] == 0)

    def write(self, rows: Sequence[int] | np.ndarray, scores, indices) -> None:
        """Store maps ``scores/indices [n, k, h, w]`` (numpy or torch, any float/int dtype) at ``rows``."""
        m, a = self.meta, self._arr
        rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        s = (scores.detach().float().cpu().numpy() if torch.is_tensor(scores) else np.asarray(scores, np.float32))
        idx = (indices.detach().long().cpu().numpy() if torch.is_tensor(indices) else np.asarray(indices, np.int64))
        shape = (len(rows), m.k, *m.grid)
        if s.shape != shape or idx.shape != shape:
            raise LabelStoreError(f"maps for {len(rows)} rows must be {list(shape)} (rows, k, h, w); got scores "
                                  f"{list(s.shape)} and indices {list(idx.shape)}.")
        if len(rows) and (rows.min() < 0 or rows.max() >= m.num_images):
            raise LabelStoreError(f"row out of range for a store of {m.num_images} images.")
        if idx.size and (idx.min() < 0 or idx.max() >= m.num_classes):
            raise LabelStoreError(f"class index out of range [0, {m.num_classes}).")
        if not np.isfinite(s).all():
            raise LabelStoreError("label-map scores contain NaN or inf; check the annotator's output.")
        n, L = len(rows), m.grid[0] * m.grid[1]
        s, idx = s.reshape(n, m.k, L), idx.reshape(n, m.k, L)
        if m.index_coding == "set":
            order = np.argsort(idx, axis=1, kind="stable")
            idx, s = np.take_along_axis(idx, order, 1), np.take_along_axis(s, order, 1)
            if m.k > 1 and (np.diff(idx, axis=1) == 0).any():
                raise LabelStoreError("a location lists the same class twice; top-k classes must be distinct "
                                      "(or create the store with index_coding='plain').")
            a["indices"][rows] = a.codec.encode(idx)
        else:
            a["indices"][rows] = idx.reshape(shape).astype(a["indices"].dtype)
        if m.score_dtype == "uint8":
            lo, hi = s.min(axis=(1, 2)), s.max(axis=(1, 2))
            step = np.where(hi > lo, (hi - lo) / 255.0, 1.0).astype(np.float32)
            q = np.rint((s - lo[:, None, None]) / step[:, None, None]).clip(0, 255).astype(np.uint8)
            a["scores"][rows] = q.reshape(shape)
            a["quant"][rows] = np.stack([lo, step], 1).astype(np.float32)
        else:
            a["scores"][rows] = s.reshape(shape).astype(m.score_dtype)
        a["written"][rows] = 1  # after the data: a killed writer never marks a row it did not finish

    def flush(self) -> None:
        if self._arr._mm is not None:
            for mm in self._arr._mm.values():
                mm.flush()

    def finalize(self) -> LabelMapStore:
        """Check every row is written, mark the store complete and return it opened for reading."""
        self.flush()
        todo = self.missing()
        if len(todo):
            raise LabelStoreError(f"cannot finalize {self.store.path}: {len(todo)} of {self.meta.num_images} maps "
                                  f"are not written (first: {self.store.paths[todo[0]]!r}); run the missing shards.")
        write_json_atomic(self.store.path / "meta.json", {**asdict(self.meta), "complete": True})
        return LabelMapStore(self.store.path)
