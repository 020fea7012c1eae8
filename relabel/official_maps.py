"""The official ReLabel label maps: one `torch.save`d [2, k, h, w] float32 tensor per image (row 0: the top-k
scores, best first; row 1: their class ids as floats; k=5 on a 15×15 grid in the release), imported into a
LabelMapStore and written back in the same layout.

The release is 1.28M separate `<wnid>/<wnid>_<id>.pt` files (9000 B each); a store holds them in one memory-mapped
folder (relabel.store). Files are read with `torch.load(weights_only=True)`: nothing in them is ever unpickled as
code, and one that would need it is refused in one sentence.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from relabel.atomic_write import MARGIN, check_free_space, full_disk_sentence, is_disk_full
from relabel.store import LabelMapStore, LabelStoreError

OFFICIAL_ANNOTATOR = "tf_efficientnet_l2_ns_475"


def official_name(image_path: str) -> str:
    """The official release's file for an image: last two path components, extension -> ``.pt``."""
    parts = Path(image_path).parts[-2:]
    return str(Path(*parts).with_suffix(".pt").as_posix())


def import_official(official_root: str | os.PathLike, store_path: str | os.PathLike,
                    image_paths: Sequence[str] | None = None, *, image_ext: str = ".JPEG",
                    score_dtype: str = "float32",
                    num_classes: int = 1000, class_names: Sequence[str] | None = None,
                    sizes: Sequence[int] | None = None, annotator: str = OFFICIAL_ANNOTATOR, input_size: int = 475,
                    chunk: int = 1024, progress: bool = True) -> LabelMapStore:
    """Import the official ``<wnid>/<wnid>_<id>.pt`` tree ([2, k, h, w]: scores, class ids as floats) into a store.

    ``image_paths`` are the dataset's relative image paths (default: derived from the ``.pt`` tree with
    ``image_ext``). Files are read with ``torch.load(weights_only=True)``; an interrupted import resumes.
    ``score_dtype`` is the store's: the default float32 is the release's own precision (9 KB per [2, 5, 15, 15]
    file), so the import is lossless; float16 / uint8 stores are Table 6's reduced-precision rows, asked for by name.
    An existing store at ``store_path`` with another dtype is refused, never silently reused.
    """
    root = Path(official_root)
    if not root.is_dir():
        raise FileNotFoundError(f"official label-map folder {root} does not exist; unpack the release there.")
    if image_paths is None:
        image_paths = sorted(p.relative_to(root).with_suffix(image_ext).as_posix() for p in root.glob("*/*.pt"))
    if not image_paths:
        raise LabelStoreError(f"no images to import: {root} holds no <wnid>/<name>.pt files.")

    def load(p: str) -> torch.Tensor:
        f = root / official_name(p)
        if not f.is_file():
            raise FileNotFoundError(f"official label map {f} for image {p!r} is missing; check the release is "
                                    "complete and matches the dataset.")
        try:
            t = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:  # refused as unsafe (never executed), or truncated / not a torch file
            from relabel.checkpoint import torch_load_error
            raise torch_load_error(f, e, "official label map", LabelStoreError) from None
        if not torch.is_tensor(t) or t.ndim != 4 or t.shape[0] != 2:
            got = f"a {list(t.shape)} tensor" if torch.is_tensor(t) else f"a {type(t).__name__}"
            raise LabelStoreError(f"official label map {f} holds {got}, not a [2, k, h, w] tensor; replace it with "
                                  "the release's file.")
        return t

    first = load(image_paths[0])
    k, h, w = first.shape[1:]
    writer = LabelMapStore.create(store_path, image_paths, num_classes=num_classes, k=k, grid=(h, w),
                                  score_dtype=score_dtype, annotator=annotator, input_size=input_size,
                                  class_names=class_names, sizes=sizes)
    todo = writer.missing()
    names = writer.store.paths
    it = range(0, len(todo), chunk)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, total=math.ceil(len(todo) / chunk), desc="import official", unit="chunk")
    for start in it:
        rows = todo[start:start + chunk]
        maps = [load(names[r]) for r in rows]
        for r, m in zip(rows, maps):
            if m.shape != first.shape:
                raise LabelStoreError(f"official label map {root / official_name(names[r])} is {list(m.shape)}, "
                                      f"not {list(first.shape)} as {root / official_name(image_paths[0])}; the release "
                                      "is mixed or that file is damaged: replace it with the release's file.")
            if not torch.equal(m[1], m[1].round()):
                raise LabelStoreError(f"official label map {root / official_name(names[r])} holds class indices "
                                      "that are not whole numbers, so it is no official label map; replace it with "
                                      "the release's file.")
        t = torch.stack(maps)
        ids = t[:, 1]
        writer.write(rows, t[:, 0], ids.long())
    return writer.finalize()


def export_official(store: LabelMapStore, out_root: str | os.PathLike, overwrite: bool = False,
                    progress: bool = True) -> int:
    """Write the store back as the official tree of ``[2, k, h, w]`` float32 ``.pt`` files, best-first; returns N."""
    out = Path(out_root)
    names = [official_name(p) for p in store.paths]
    if len(set(names)) != len(names):
        raise LabelStoreError("two images map to the same official file name (last two path components); "
                              "the official layout cannot hold this dataset.")
    it = range(len(store))
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="export official", unit="img")
    out.mkdir(parents=True, exist_ok=True)
    m = store.meta  # a [2, k, h, w] float32 file: its data plus torch's zip container (~1.5 kB)
    check_free_space(out, len(store) * (8 * m.k * m.grid[0] * m.grid[1] + 4096) + MARGIN,
                     f"the official tree {out}", LabelStoreError)
    for row in it:
        f = out / names[row]
        if f.exists() and not overwrite:
            raise FileExistsError(f"{f} already exists; pass overwrite=True or export to an empty folder.")
        f.parent.mkdir(parents=True, exist_ok=True)
        s, idx = store.read(row, rank_order=True)
        try:
            with open(f, "wb") as fh:  # a Python file: a full disk is OSError(ENOSPC), not a bare short write
                torch.save(torch.from_numpy(np.stack([s, idx.astype(np.float32)])), fh)
        except (OSError, RuntimeError) as e:
            f.unlink(missing_ok=True)  # never a half-written map under a release name
            if not is_disk_full(e):
                raise
            raise LabelStoreError(full_disk_sentence(f"the official tree {out}", out, e,
                                                     f"the {row} maps before {f.name} are complete")) from None
    return len(store)
