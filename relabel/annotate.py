"""The annotation job: image folder → top-k label-map store, with a machine annotator (paper §3.1, Appendix B).

Each image is resized whole to the annotator's input (no crop), read fully-convolutionally (`relabel.fully_conv`)
and its top-k classes per location are written into one `LabelMapStore`. The job is sharded over `torchrun`
ranks (rank r takes every r-th missing image; only rank 0 creates and finalizes the store) and resumable: rows
are written chunk by chunk with a per-row 'written' flag, so a killed job continues where it stopped and its
final store equals an uninterrupted run's. From the command line (`--help` says more)::

    python -m relabel.annotate --images $IMAGENET_ROOT/train --ckpt annotator.safetensors --input-size 475 \\
        --out stores/l2-float32-k5
    torchrun --standalone --nproc_per_node=8 -m relabel.annotate ...same options...

`--ckpt` is a checkpoint of ours (`python -m relabel.checkpoint convert` makes one from a timm/torchvision
weights file) or a `.pth` state dict with `--arch`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Sequence

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader, Subset
from torchvision import transforms as T

from relabel.fully_conv import NotFullyConvolutional, label_map, topk_label_map
from relabel.dist import DistInfo, agree, barrier, init_distributed, is_main, world_size
from relabel.loader import IMAGENET_MEAN, IMAGENET_STD, BadImageError, EvalSet
from relabel.progress import bar as progress_bar
from relabel.store import (IMAGE_EXTS, SCORE_DTYPES, LabelMapStore, LabelMapWriter, LabelStoreError, file_sizes,
                           list_images)
from relabel.train import default_device


class AnnotateError(ValueError):
    """A command-line input the annotation job cannot use (missing folder, no images, an --out that is no store)."""


def whole_image_transform(size: int, mean=IMAGENET_MEAN, std=IMAGENET_STD) -> T.Compose:
    """The whole image squashed to size×size (the map must cover the uncropped image), then normalised."""
    return T.Compose([T.Resize((size, size), interpolation=T.InterpolationMode.BICUBIC), T.ToTensor(),
                      T.Normalize(mean, std)])


@torch.no_grad()
def grid_of(model: nn.Module, input_size: int, device) -> tuple[int, int]:
    feats = model.forward_features(torch.zeros(1, 3, input_size, input_size, device=device))
    return int(feats.shape[2]), int(feats.shape[3])


def _open_writer(info: DistInfo, store_path, paths: Sequence[str], **settings) -> LabelMapWriter:
    """Rank 0 allocates the store (or reopens an unfinished one); the other ranks open it once it exists.

    Creation is one process's job: several ranks allocating the same memory maps at once would truncate each
    other's files. Rank 0's verdict is broadcast, so a refused store stops every rank with the same sentence.
    """
    if info.world == 1:
        return LabelMapStore.create(store_path, paths, **settings)
    writer, refused = None, None
    if info.main:
        try:
            writer = LabelMapStore.create(store_path, paths, **settings)
        except LabelStoreError as e:
            refused = str(e)
    refused = agree(refused)
    if refused is not None:
        raise LabelStoreError(refused)
    return writer if writer is not None else LabelMapWriter(store_path)


@torch.no_grad()
def annotate(model: nn.Module, root: str | os.PathLike, paths: Sequence[str], store_path: str | os.PathLike, *,
             k: int = 5, input_size: int = 475, score_dtype: str = "float32", annotator: str = "",
             class_names: Sequence[str] | None = None, batch_size: int = 64, chunk: int = 1024,
             workers: int = 0, device=None, progress: bool = True, with_sizes: bool = True,
             mean=IMAGENET_MEAN, std=IMAGENET_STD) -> dict:
    """Writes (or completes) the store of `paths` under `root`; returns {'images', 'seconds', 'images_per_s'}
    summed over the ranks of a torchrun launch.

    Finished rows of an earlier, killed run are kept (their settings must match, or the store refuses); only the
    missing rows are computed.
    """
    info = init_distributed()
    device = device or default_device(info)
    model = model.to(device).eval()
    root = Path(root)
    num_classes = model.get_classifier().weight.shape[0]
    sizes = file_sizes(root, paths) if with_sizes and info.main else None  # only the creator fingerprints
    writer = _open_writer(info, store_path, paths, num_classes=num_classes, k=k,
                          grid=grid_of(model, input_size, device), score_dtype=score_dtype, annotator=annotator,
                          input_size=input_size, class_names=class_names, sizes=sizes)
    all_rows = writer.rows(paths)
    row_to_item = {int(r): i for i, r in enumerate(all_rows)}
    todo = writer.missing()[info.rank::info.world]
    barrier()  # every rank has read the same 'missing' list before any rank writes
    dataset = EvalSet(root, paths, whole_image_transform(input_size, mean, std))
    loader = DataLoader(Subset(dataset, [row_to_item[int(r)] for r in todo]), batch_size=batch_size,
                        num_workers=workers)
    amp = device.type == "cuda"
    t0, done, flushed = time.time(), 0, 0
    bar = progress_bar(total=len(todo) * info.world, disable=not (progress and info.main), unit="img",
                       desc=f"annotate [{annotator or type(model).__name__} @{input_size}, top-{k}]")
    check = True  # verify once, on the first batch, that the head really is average-pool → linear
    for x, idx in loader:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            maps = label_map(model, x.to(device, non_blocking=True), check=check).float()
        check = False
        scores, indices = topk_label_map(maps, k)
        writer.write(all_rows[idx.numpy()], scores, indices)
        done += len(idx)
        bar.update(len(idx) * info.world)  # rank 0's share stands for every rank's
        bar.set_postfix(img_s=f"{done * info.world / max(time.time() - t0, 1e-9):.1f}", refresh=False)
        if done - flushed >= chunk or done == len(todo):
            writer.flush()  # a chunk is durable before the next starts; a crash loses at most one chunk
            flushed = done
    bar.close()
    total = done
    if info.world > 1:
        count = torch.tensor([done], dtype=torch.int64, device=device)  # nccl reduces only tensors on the GPU
        dist.all_reduce(count)
        total = int(count.item())
    if info.main:
        writer.finalize()
    barrier()
    seconds = time.time() - t0
    return {"images": total, "seconds": seconds, "images_per_s": total / seconds if seconds > 0 else 0.0}


def store_bytes(path: str | os.PathLike) -> int:
    """Bytes of the store's files (what it takes on disk once every row is written)."""
    return sum(f.stat().st_size for f in Path(path).iterdir() if f.is_file())


def _human(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _check_inputs(images: Path, out: Path) -> list[str]:
    if not images.is_dir():
        raise AnnotateError(f"image folder {images} does not exist; pass --images the folder that holds the images "
                            "(e.g. $IMAGENET_ROOT/train with <wnid>/<file>.JPEG, or a flat folder).")
    paths = list_images(images)
    if not paths:
        raise AnnotateError(f"no images ({', '.join(IMAGE_EXTS)}) under {images}; pass --images the folder that "
                            "holds them.")
    if (out / "meta.json").is_file():  # resuming: the store must be this image set's (the sentence names a diff)
        old = LabelMapStore(out, _allow_incomplete=True)
        old.check_dataset(paths, file_sizes(images, paths) if old.meta.fingerprint_has_sizes else None)
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise AnnotateError(f"--out {out} exists and is not a label-map store; choose a new path for the store.")
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m relabel.annotate",
        description="Annotate every image under --images with a machine annotator into one label-map store "
                    "(paper §3.1: the whole image resized to --input-size, the classifier applied at every location "
                    "of the last feature map, the top-k classes per location kept). Resumable: run the same command "
                    "again after a kill and it fills only the missing maps. Sharded: launch with `torchrun "
                    "--standalone --nproc_per_node=N -m relabel.annotate ...` and each rank annotates every N-th "
                    "image (one GPU per rank). Prints images, seconds, images/s and the store's size at the end.",
        epilog="A local timm/torchvision weights file becomes a checkpoint with `python -m relabel.checkpoint "
               "convert --arch tf_efficientnet_l2_ns_475 --weights FILE --out annotator.safetensors`.")
    p.add_argument("--images", required=True, type=Path,
                   help="image folder: ImageNet layout <wnid>/<file>.JPEG (e.g. $IMAGENET_ROOT/train) or flat; every "
                        "image below it is annotated, keyed by its path relative to this folder")
    p.add_argument("--ckpt", required=True, type=Path,
                   help="the annotator: a .safetensors of ours (relabel.checkpoint) or a .pth/.bin state dict")
    p.add_argument("--arch", default=None,
                   help="timm model name of --ckpt (e.g. tf_efficientnet_l2_ns_475); only needed when the file does "
                        "not name it")
    p.add_argument("--input-size", type=int, default=None,
                   help="side of the square the whole image is resized to (paper: 475); default: the model's timm "
                        "pretrained config")
    p.add_argument("--out", required=True, type=Path, help="the label-map store to create or complete (a folder)")
    p.add_argument("--k", type=int, default=5, help="classes kept per location (default: 5, as the official maps)")
    p.add_argument("--dtype", default="float32", choices=SCORE_DTYPES,
                   help="score storage (default: float32, as the official maps; uint8 = 8-bit per-image affine)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass on each rank (default: 64)")
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1),
                   help="image-decoding processes per rank (default: min(8, CPUs))")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    main_rank = is_main()
    try:
        from relabel.checkpoint import CheckpointError, load_checkpoint
        if args.k < 1 or args.batch_size < 1 or args.workers < 0 or (args.input_size is not None and args.input_size < 1):
            raise AnnotateError("--k, --batch-size and --input-size must be positive and --workers not negative.")
        paths = _check_inputs(args.images, args.out)
        ck = load_checkpoint(args.ckpt, args.arch)
        cfg = getattr(ck.model, "pretrained_cfg", {}) or {}
        size = args.input_size or int(cfg.get("input_size", (3, 224, 224))[-1])
        stats = annotate(ck.model, args.images, paths, args.out, k=args.k, input_size=size, score_dtype=args.dtype,
                         annotator=f"{ck.arch}@sha256:{ck.sha256[:12]}", batch_size=args.batch_size,
                         workers=args.workers, progress=not args.no_progress,
                         mean=tuple(cfg.get("mean", IMAGENET_MEAN)), std=tuple(cfg.get("std", IMAGENET_STD)))
    except (AnnotateError, CheckpointError, LabelStoreError, NotFullyConvolutional, BadImageError) as e:
        if main_rank:  # every rank meets the same inputs (rank 0's store verdict is broadcast): say it once
            print(f"error: {e}", file=sys.stderr)
        else:
            time.sleep(2)  # torchrun stops every rank when one exits: leave rank 0 the time to say why
        return 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if main_rank:
        world = world_size()
        print(f"annotated {stats['images']} images in {stats['seconds']:.1f} s ({stats['images_per_s']:.1f} images/s"
              f"{f' over {world} ranks' if world > 1 else ''}); store {args.out}: {len(paths)} maps, "
              f"{_human(store_bytes(args.out))} on disk")
    return 0


if __name__ == "__main__":
    sys.exit(main())
