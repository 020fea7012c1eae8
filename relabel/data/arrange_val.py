"""Arrange ImageNet's val folder from the official tarball's flat layout into one folder per class (wnid).

`ILSVRC2012_img_val.tar` unpacks to 50,000 files `ILSVRC2012_val_00000001.JPEG` ... directly in one folder; the
readers here (like torchvision's ImageFolder) need `val/<wnid>/`. Each file's class is in the devkit
(`ILSVRC2012_devkit_t12.tar.gz`): line i of `data/ILSVRC2012_validation_ground_truth.txt` is the ILSVRC2012_ID of
val image i, and `data/meta.mat` maps an ILSVRC2012_ID to its wnid (the 1000 leaf synsets, numbered in the
devkit's own order, which is not the sorted-wnid order of class indices). The files are renamed in place (same
folder, so no copy); a run stopped midway is finished by running it again::

    python -m relabel.data.arrange_val $IMAGENET_ROOT/val --devkit ILSVRC2012_devkit_t12.tar.gz
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import tarfile
from pathlib import Path

from relabel.data.readers import IMAGE_EXTENSIONS, val_index

GROUND_TRUTH = "data/ILSVRC2012_validation_ground_truth.txt"
META = "data/meta.mat"


class ArrangeError(ValueError):
    """A val folder or devkit this command cannot use; the message is one sentence saying why and what to do."""


def _devkit_files(devkit: Path) -> tuple[bytes, bytes]:
    """(meta.mat, ground truth) bytes from the devkit tarball or its unpacked folder."""
    if devkit.is_dir():
        found = {n: next(iter(sorted(devkit.rglob(Path(n).name))), None) for n in (META, GROUND_TRUTH)}
        if None in found.values():
            raise ArrangeError(f"devkit folder {devkit} has no {META} and {GROUND_TRUTH}; pass the unpacked "
                               "ILSVRC2012_devkit_t12 folder or its .tar.gz.")
        return found[META].read_bytes(), found[GROUND_TRUTH].read_bytes()
    try:
        with tarfile.open(devkit) as tar:
            members = {n: next((m for m in tar.getmembers() if m.name.endswith(n)), None) for n in (META, GROUND_TRUTH)}
            if None in members.values():
                raise ArrangeError(f"{devkit} holds no {META} and {GROUND_TRUTH}; pass ILSVRC2012_devkit_t12.tar.gz.")
            return tuple(tar.extractfile(members[n]).read() for n in (META, GROUND_TRUTH))
    except (OSError, tarfile.TarError) as e:
        raise ArrangeError(f"devkit {devkit} cannot be read ({e}); pass ILSVRC2012_devkit_t12.tar.gz (from "
                           "image-net.org, beside the val tarball).") from None


def val_wnids(devkit: str | os.PathLike) -> list[str]:
    """The wnid of val image i+1 at position i, from the devkit's ground truth and meta.mat."""
    import scipy.io

    meta, truth = _devkit_files(Path(devkit))
    synsets = scipy.io.loadmat(io.BytesIO(meta), squeeze_me=True)["synsets"]
    id_to_wnid = {int(s["ILSVRC2012_ID"]): str(s["WNID"]) for s in synsets if int(s["num_children"]) == 0}
    ids = [int(line) for line in truth.decode().split()]
    unknown = sorted(set(ids) - set(id_to_wnid))
    if unknown:
        raise ArrangeError(f"devkit {devkit}: the ground truth names ILSVRC2012_IDs {unknown[:3]} that meta.mat "
                           "does not list as classes; the devkit is damaged, download it again.")
    return [id_to_wnid[i] for i in ids]


def flat_val_images(folder: Path) -> list[Path]:
    """Images lying directly in `folder` whose names carry a val index (ILSVRC2012_val_00000001.JPEG)."""
    out = []
    for p in folder.iterdir():
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            try:
                val_index(p)
            except ValueError:
                continue
            out.append(p)
    return sorted(out)


def arrange(val: str | os.PathLike, devkit: str | os.PathLike) -> tuple[int, int]:
    """Move every flat val image into `val/<wnid>/`; returns (images moved, class folders holding them)."""
    val = Path(val)
    if not val.is_dir():
        raise ArrangeError(f"val folder {val} does not exist; pass the folder ILSVRC2012_img_val.tar unpacked into.")
    images = flat_val_images(val)
    if not images:
        raise ArrangeError(f"{val} holds no ILSVRC2012_val_*.JPEG files directly; it is arranged already or not "
                           "ImageNet's val folder.")
    wnids = val_wnids(devkit)
    beyond = [p.name for p in images if val_index(p) > len(wnids)]
    if beyond:
        raise ArrangeError(f"{beyond[0]} has no entry in the devkit's ground truth ({len(wnids)} lines); "
                           "pass the ILSVRC2012 devkit that belongs to this val set.")
    used = set()
    for p in images:
        wnid = wnids[val_index(p) - 1]
        (val / wnid).mkdir(exist_ok=True)
        os.replace(p, val / wnid / p.name)
        used.add(wnid)
    return len(images), len(used)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m relabel.data.arrange_val", description=__doc__.split("\n\n")[0])
    p.add_argument("val", type=Path, help="the folder ILSVRC2012_img_val.tar was unpacked into (e.g. $IMAGENET_ROOT/val)")
    p.add_argument("--devkit", required=True, type=Path,
                   help="ILSVRC2012_devkit_t12.tar.gz (or its unpacked folder): the val ground truth")
    args = p.parse_args(argv)
    try:
        moved, classes = arrange(args.val, args.devkit)
    except ArrangeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"moved {moved} images of {args.val} into {classes} class folders <wnid>/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
