"""The annotation job: image folder → top-k label-map store, with a machine annotator (paper §3.1, Appendix B).

Each image is resized whole to the annotator's input (no crop), read fully-convolutionally (`relabel.annotator`)
and its top-k classes per location are written into one `LabelMapStore`. The job is sharded over `torchrun`
ranks (rank r takes every r-th missing image) and resumable: rows are written chunk by chunk with a per-row
'written' flag, so a killed job continues where it stopped and its final store equals an uninterrupted run's.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, Subset
from relabel.progress import bar as progress_bar

from relabel.annotator import label_map, topk_label_map
from relabel.loader import IMAGENET_MEAN, IMAGENET_STD, EvalSet
from relabel.store import LabelMapStore, file_sizes
from relabel.train import default_device, init_distributed
from torchvision import transforms as T


def whole_image_transform(size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> T.Compose:
    """The whole image squashed to size×size (the map must cover the uncropped image), then normalised."""
    return T.Compose([T.Resize((size, size), interpolation=T.InterpolationMode.BICUBIC), T.ToTensor(),
                      T.Normalize(mean, std)])


@torch.no_grad()
def grid_of(model: nn.Module, input_size: int, device) -> tuple[int, int]:
    feats = model.forward_features(torch.zeros(1, 3, input_size, input_size, device=device))
    return int(feats.shape[2]), int(feats.shape[3])


@torch.no_grad()
def annotate(model: nn.Module, root: str | os.PathLike, paths: Sequence[str], store_path: str | os.PathLike, *,
             k: int = 5, input_size: int = 475, score_dtype: str = "float32", annotator: str = "",
             class_names: Sequence[str] | None = None, batch_size: int = 64, chunk: int = 1024,
             workers: int = 0, device=None, progress: bool = True, with_sizes: bool = True,
             die_after_chunks: int | None = None) -> dict:
    """Writes (or completes) the store of `paths` under `root`; returns {'images', 'seconds', 'images_per_s'}.

    Finished rows of an earlier, killed run are kept (their settings must match, or the store refuses); only the
    missing rows are computed. `die_after_chunks` kills the process after that many chunks (for resume tests;
    also RELABEL_DIE_AFTER_CHUNKS).
    """
    info = init_distributed()
    device = device or default_device(info)
    model = model.to(device).eval()
    root = Path(root)
    num_classes = model.get_classifier().weight.shape[0]
    sizes = file_sizes(root, paths) if with_sizes else None
    writer = LabelMapStore.create(store_path, paths, num_classes=num_classes, k=k,
                                  grid=grid_of(model, input_size, device), score_dtype=score_dtype,
                                  annotator=annotator, input_size=input_size, class_names=class_names, sizes=sizes)
    all_rows = writer.rows(paths)
    row_to_item = {int(r): i for i, r in enumerate(all_rows)}
    todo = writer.missing()[info.rank::info.world]
    die = die_after_chunks or int(os.environ.get("RELABEL_DIE_AFTER_CHUNKS", "0")) or None
    dataset = EvalSet(root, paths, whole_image_transform(input_size))
    amp = device.type == "cuda"
    t0, done = time.time(), 0
    bar = progress_bar(total=len(todo), disable=not (progress and info.main), unit="img",
               desc=f"annotate [{annotator or type(model).__name__} @{input_size}, top-{k}]")
    check = True  # verify once, on the first batch, that the head really is average-pool → linear
    for c, start in enumerate(range(0, len(todo), chunk), 1):
        rows = todo[start:start + chunk]
        items = [row_to_item[int(r)] for r in rows]
        loader = DataLoader(Subset(dataset, items), batch_size=batch_size, num_workers=workers)
        for x, idx in loader:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                maps = label_map(model, x.to(device), check=check).float()
            check = False
            scores, indices = topk_label_map(maps, k)
            writer.write(all_rows[idx.numpy()], scores, indices)
            done += len(idx)
            bar.update(len(idx))
            bar.set_postfix(img_s=f"{done / max(time.time() - t0, 1e-9):.1f}", refresh=False)
        writer.flush()  # a chunk is durable before the next starts; a kill loses at most one chunk
        if die and c == die:
            os.kill(os.getpid(), 9)
    bar.close()
    if info.world > 1:
        dist.barrier()
    if info.main:
        writer.finalize()
    if info.world > 1:
        dist.barrier()
    seconds = time.time() - t0
    return {"images": done, "seconds": seconds, "images_per_s": done / seconds if seconds > 0 else 0.0}
