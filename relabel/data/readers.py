"""Readers for the evaluation datasets, the same for the mini world and for the real, full-scale files.

* ImageNet-style class folders (label = index of the folder name in the dataset's class list: ImageNet's 1000
  sorted wnids, the mini world's classes; train and val share this one rule) with optional boxes (the mini
  world's ``annotations.json`` or ImageNet's PASCAL-VOC XML files);
* ImageNetV2 folders (label = ``int(folder)``; a string sort would put "10" before "2");
* ImageNet-ReaL ``real.json`` and Shankar et al.'s JSON, keyed by the 8-digit val index in the file name, so
  ``val_00000001.png`` and ``ILSVRC2012_val_00000001.JPEG`` both find entry 1;
* ImageNet-A (folder names + the subset's fine class indices), IN-9 (``<variant>/val/<NN_name>/``,
  ``in_to_in9.json``, ``fg_mask``) and COCO instances JSON through pycocotools.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["IMAGE_EXTENSIONS", "NOT_CLASS_FOLDERS", "UnknownClassFolder", "class_folders", "list_class_folders",
           "list_int_folders", "val_index", "read_real_labels", "real_labels_for", "ShankarLabels", "read_shankar",
           "read_box_annotations", "read_voc_boxes", "read_imagenet_a", "read_in9", "read_in_to_in9", "read_fg_mask",
           "read_coco", "coco_multilabel", "ImageList"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_VAL_INDEX = re.compile(r"(?:^|_)val_(\d{8})(?:\.[A-Za-z]+)?$")


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _require_dir(root: Path, what: str) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{what} folder {root} does not exist; generate it (python -m relabel.data) "
                                f"or point the config at the dataset.")
    return root


NOT_CLASS_FOLDERS = ("lost+found",)  # made by the file system, never a class; hidden folders are skipped too


class UnknownClassFolder(ValueError):
    """A folder under a class-folder root whose name is not in the dataset's class list."""


def class_folders(root: str | Path) -> list[Path]:
    """The sub-folders of ``root`` that can hold a class, sorted: every folder except hidden ones (name starting
    with '.', e.g. ``.ipynb_checkpoints``) and ``lost+found``, which tools and file systems create beside data."""
    return sorted(p for p in Path(root).iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name not in NOT_CLASS_FOLDERS)


def list_class_folders(root: str | Path, classes=None, what: str = "image"
                       ) -> tuple[list[str], list[tuple[Path, int]]]:
    """ImageNet layout ``root/<class>/<image>``: (the class list, [(path, class index)]).

    With ``classes`` (the dataset's class list in index order: ImageNet's 1000 sorted wnids from timm, the mini
    world's ``stats.json`` classes), a folder's label is the index of its name in that list, so a subset of the
    classes keeps every label, and a folder that is not a class is an :class:`UnknownClassFolder` error naming it.
    Without ``classes``, the class list is the sorted folder names: only for datasets whose classes are their
    folders (fine-grained transfer sets, whose callers compare the splits' lists). Either way, hidden folders
    (``.*``) and ``lost+found`` are not classes and are skipped (:func:`class_folders`).
    """
    root = _require_dir(root, what)
    folders = class_folders(root)
    if classes is None:
        classes = [p.name for p in folders]
        if not classes:
            raise ValueError(f"{root} holds no class folders; expected root/<class>/<image>.")
    classes = list(classes)
    index = {c: k for k, c in enumerate(classes)}
    unknown = [p.name for p in folders if p.name not in index]
    if unknown:
        raise UnknownClassFolder(
            f"{what} folder {root} has folders {unknown[:3]} that are not in the class list ({len(classes)} "
            f"classes, e.g. {classes[0] if classes else '-'}); move them out (hidden folders and lost+found are "
            f"skipped) or check it is the right dataset.")
    samples = [(p, index[f.name]) for f in folders for p in _images_in(f)]
    return classes, samples


def list_int_folders(root: str | Path) -> list[tuple[Path, int]]:
    """ImageNetV2 layout ``root/<int class>/<hash>.<ext>``: label = int(folder name), never the sorted position."""
    root = _require_dir(root, "ImageNetV2")
    samples = []
    for folder in sorted(class_folders(root), key=_int_folder):  # the class-folder rule: hidden, lost+found skipped
        samples += [(p, _int_folder(folder)) for p in _images_in(folder)]
    return samples


def _int_folder(folder: Path) -> int:
    if not folder.name.isdigit():
        raise ValueError(f"ImageNetV2 folder {folder} is not an integer class index.")
    return int(folder.name)


def val_index(path: str | Path) -> int:
    """1-based ImageNet val index from a file name such as ``ILSVRC2012_val_00000001.JPEG`` or ``val_00000001.png``."""
    m = _VAL_INDEX.search(Path(path).name)
    if not m:
        raise ValueError(f"{Path(path).name} carries no 8-digit val index (expected ..._val_00000001.<ext>).")
    return int(m.group(1))


def read_real_labels(path: str | Path) -> dict[int, list[int]]:
    """ReaL ``real.json`` (entry i = labels of val image i + 1) as {1-based index: class list}; [] = unscored."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, list):
        raise ValueError(f"{path} is not a ReaL label file (expected a JSON list of class lists).")
    return {i + 1: [int(c) for c in labels] for i, labels in enumerate(data)}


def real_labels_for(files, real: dict[int, list[int]]) -> list[list[int]]:
    """ReaL label sets of ``files`` in order, matched by the val index in each file name."""
    return [real[val_index(f)] for f in files]


@dataclass
class ShankarLabels:
    """Shankar et al. multi-labels keyed by 1-based val index, classes as indices into the sorted class list."""
    correct: dict[int, set[int]] = field(default_factory=dict)
    unclear: dict[int, set[int]] = field(default_factory=dict)
    wrong: dict[int, set[int]] = field(default_factory=dict)
    problematic: set[int] = field(default_factory=set)
    imagenet_m: set[int] = field(default_factory=set)


def read_shankar(path: str | Path, classes: list[str]) -> ShankarLabels:
    """Read Shankar et al.'s JSON; ``classes`` (wnids or mini class names, index order) maps names to indices.
    Entries whose file name has no val index (e.g. other datasets' images) are skipped, as the metric does."""
    data = json.loads(Path(path).read_text())
    if "initial_annots" not in data:
        raise ValueError(f"{path} is not a Shankar et al. label file (no 'initial_annots').")
    index = {c: k for k, c in enumerate(classes)}
    out = ShankarLabels()
    for fname, ann in data["initial_annots"].items():
        if not _VAL_INDEX.search(fname):
            continue
        i = val_index(fname)
        for kind in ("correct", "unclear", "wrong"):
            unknown = [c for c in ann.get(kind, []) if c not in index]
            if unknown:
                raise ValueError(f"{path}: {fname} names classes {unknown} that are not in the class list.")
            getattr(out, kind)[i] = {index[c] for c in ann.get(kind, [])}
    out.problematic = {val_index(f) for f in data.get("problematic_images", {}) if _VAL_INDEX.search(f)}
    out.imagenet_m = {val_index(f) for f in data.get("imagenet_m", []) if _VAL_INDEX.search(f)}
    return out


def read_box_annotations(path: str | Path) -> dict[str, dict]:
    """The mini world's per-split ``annotations.json`` as {relative file: record with label, boxes, objects}."""
    data = json.loads(Path(path).read_text())
    return {r["file"]: r for r in data["images"]}


def read_voc_boxes(path: str | Path) -> tuple[tuple[int, int], list[tuple[str, list[float]]]]:
    """ImageNet's PASCAL-VOC box XML: ((width, height), [(wnid, [xmin, ymin, xmax, ymax])]), values as written
    (x along the width). Whether the files count pixels from 0 or 1 moves a box by one pixel, far below what
    Fig. 2's IoU statistics resolve on ~400-pixel images, so no shift is applied."""
    root = ET.parse(path).getroot()
    size = root.find("size")
    width, height = int(size.findtext("width")), int(size.findtext("height"))
    boxes = []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        boxes.append((obj.findtext("name"), [float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")]))
    return (width, height), boxes


def read_imagenet_a(root: str | Path, classes: list[str]) -> tuple[list[tuple[Path, int]], list[int]]:
    """ImageNet-A: samples labelled with FINE class indices (via ``classes``) and the subset's fine indices
    (from ``indices.txt`` if present, else from the folder names), used as ``logits[:, indices]``."""
    root = _require_dir(root, "ImageNet-A")
    _, samples = list_class_folders(root, classes, "ImageNet-A")
    idx_file = root / "indices.txt"
    if idx_file.is_file():
        indices = [int(x) for x in idx_file.read_text().split()]
    else:
        index = {c: k for k, c in enumerate(classes)}
        indices = sorted(index[f.name] for f in class_folders(root))
    return samples, indices


def read_in9(root: str | Path, variant: str, split: str = "val") -> list[tuple[Path, int]]:
    """Background-challenge images ``root/<variant>/<split>/<NN_name>/``: (path, coarse class = int(NN))."""
    folder = _require_dir(Path(root) / variant / split, f"IN-9 {variant}")
    samples = []
    for cls in class_folders(folder):  # the class-folder rule: hidden folders and lost+found are skipped
        if not cls.name.split("_", 1)[0].isdigit():
            raise UnknownClassFolder(f"IN-9 folder {cls} is not a class folder <NN>_<name> (e.g. 00_dog).")
        coarse = int(cls.name.split("_", 1)[0])
        samples += [(p, coarse) for p in _images_in(cls)]
    return samples


def read_in_to_in9(path: str | Path, n_classes: int) -> np.ndarray:
    """``in_to_in9.json`` as an int array: fine class index -> coarse class, -1 for classes outside IN-9."""
    data = json.loads(Path(path).read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object {{fine class index: IN-9 class}}.")
    table = np.full(n_classes, -1, dtype=np.int64)
    for k, v in data.items():
        if not 0 <= int(k) < n_classes:
            raise ValueError(f"{path} maps class {k}, outside 0..{n_classes - 1}.")
        table[int(k)] = int(v)
    return table


def read_fg_mask(root: str | Path, image_path: str | Path, split: str = "val") -> np.ndarray:
    """The boolean foreground mask of an IN-9 image (``fg_mask/<split>/<class>/<stem>.npy``)."""
    image_path = Path(image_path)
    return np.load(Path(root) / "fg_mask" / split / image_path.parent.name / f"{image_path.stem}.npy") > 0


def read_coco(path: str | Path):
    """A COCO instances JSON through pycocotools (quietly)."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    if not Path(path).is_file():
        raise FileNotFoundError(f"COCO annotation file {path} does not exist.")
    with contextlib.redirect_stdout(io.StringIO()):
        return COCO(str(path))


def coco_multilabel(coco) -> tuple[list[int], np.ndarray, list[int]]:
    """Multi-label targets: (image ids, [n_images, n_categories] 0/1 matrix, category ids in column order)."""
    cat_ids = sorted(coco.getCatIds())
    column = {c: k for k, c in enumerate(cat_ids)}
    image_ids = sorted(coco.getImgIds())
    y = np.zeros((len(image_ids), len(cat_ids)), dtype=np.int64)
    for row, image_id in enumerate(image_ids):
        for ann in coco.loadAnns(coco.getAnnIds(imgIds=[image_id])):
            y[row, column[ann["category_id"]]] = 1
    return image_ids, y, cat_ids


class ImageList:
    """A map-style dataset over (path, target) pairs that loads RGB PIL images (usable by torch DataLoader)."""

    def __init__(self, samples, transform=None):
        self.samples = list(samples)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i):
        from relabel.loader import load_rgb  # a corrupt file: one sentence naming it and its index
        path, target = self.samples[i]
        image = load_rgb(path, i)
        return (self.transform(image) if self.transform else image), target
