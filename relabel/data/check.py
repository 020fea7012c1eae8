"""The full-scale data check: every folder and label file a run reads, in seconds; with --decode, every image.

    python -m relabel.data.check --data-root $IMAGENET_ROOT            # layout: train/, val/ and the evaluation sets
    python -m relabel.data.check --data-root $IMAGENET_ROOT --decode   # + opens every train/val image (a process pool)

Without --decode it is the check a run makes before it trains (`relabel.evaluators.check_data`, plus the training
folder's class folders). A truncated or corrupt JPEG only shows when it is decoded, which a run does at the epoch
it meets the file; --decode opens every image of train/ and val/ now, in parallel, and lists every bad one (path
and PIL's reason), so they can be removed or replaced before a 300-epoch run starts. Exit status 0 when all is
well, 1 when something is wrong (one sentence, or the list of bad images and a closing sentence).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from relabel.data.readers import UnknownClassFolder, list_class_folders


def decode_error(path: str) -> str | None:
    """None if the image decodes as training reads it (relabel.loader.load_rgb), else the one-sentence reason."""
    from relabel.loader import BadImageError, load_rgb
    try:
        load_rgb(path)
    except BadImageError as e:
        return str(e)
    return None


def find_bad_images(paths: list[str], workers: int, progress: bool = True) -> list[tuple[str, str]]:
    """(path, reason) of every image in `paths` that does not decode, in `paths` order; `workers` processes."""
    from relabel.progress import bar as progress_bar
    bad = []
    bar = progress_bar(total=len(paths), disable=not progress, unit="img", desc="decode")
    chunk = max(1, min(256, len(paths) // (4 * max(workers, 1)) or 1))
    if workers <= 1:
        results = map(decode_error, paths)
        for path, why in zip(paths, results):
            bar.update(1)
            if why:
                bad.append((path, why))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for path, why in zip(paths, pool.map(decode_error, paths, chunksize=chunk)):
                bar.update(1)
                if why:
                    bad.append((path, why))
    bar.close()
    return bad


def main(argv=None) -> int:
    from relabel import evaluators as E

    p = argparse.ArgumentParser(prog="python -m relabel.data.check", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--data-root", default=os.environ.get("IMAGENET_ROOT"), type=Path,
                   help="the folder holding train/, val/ and the evaluation sets (default: $IMAGENET_ROOT)")
    p.add_argument("--evaluators", default=",".join(E.NAMES),
                   help=f"comma-separated evaluators whose data to check (default: all: {','.join(E.NAMES)})")
    p.add_argument("--decode", action="store_true", help="also open every image of train/ and val/ and list the "
                                                         "ones that do not decode")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="decoding processes (default: all CPUs)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    try:
        if args.data_root is None:
            raise FileNotFoundError("no data root: pass --data-root DIR or set IMAGENET_ROOT.")
        names = E.names_for_suites([n.strip() for n in args.evaluators.split(",") if n.strip()])
        roots = E.DataRoots.for_scale("full", args.data_root, given_by="cli")
        _, train = list_class_folders(args.data_root / "train", roots.classes, "training image")
        if not train:
            raise FileNotFoundError(f"training folder {args.data_root / 'train'} holds no images; expected "
                                    "train/<wnid>/*.JPEG.")
        E.check_data(names, roots)
    except (FileNotFoundError, UnknownClassFolder, E.EvalError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.data_root}: layout fits ({len(train)} training images; evaluators {', '.join(names)})")
    if not args.decode:
        return 0
    val = [str(q) for q, _ in E.base.class_folder_samples(roots.val, roots.classes, "ImageNet val")] \
        if roots.val is not None and roots.val.is_dir() else []
    paths = [str(q) for q, _ in train] + val
    t0 = time.time()
    bad = find_bad_images(paths, args.workers, progress=not args.no_progress)
    for _, why in bad:
        print(why, file=sys.stderr)
    if bad:
        print(f"error: {len(bad)} of {len(paths)} images of train/ and val/ cannot be decoded (listed above); "
              "remove or replace them before training.", file=sys.stderr)
        return 1
    print(f"decoded all {len(paths)} images of train/ and val/ in {time.time() - t0:.1f} s ({args.workers} processes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
