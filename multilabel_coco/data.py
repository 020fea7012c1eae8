"""COCO multi-label splits: image paths, multi-hot targets and class names from an instances JSON (pycocotools).

An image's label set is the set of categories of its instances (docs/references.md, COCO); columns follow the sorted
category ids (COCO's 80 ids run 1..90 with gaps, so ids are never column numbers). Images without any instance
stay in the split with an all-zero target, as in the usual COCO multi-label protocol. The mini world writes the
same files (`coco/{train,val}/`, `coco/annotations/instances_{train,val}.json`), so one reader serves both scales.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from relabel.data.readers import coco_multilabel, read_coco
from relabel.loader import Sample


@dataclass(frozen=True)
class CocoSplit:
    """One split: `paths[i]` (relative to `root`) is image `image_ids[i]` with multi-hot row `targets[i]`."""
    root: Path
    annotations: Path
    paths: tuple
    image_ids: tuple
    targets: np.ndarray  # [N, C] float32 in {0, 1}
    class_names: tuple
    cat_ids: tuple

    @property
    def num_classes(self) -> int:
        return len(self.cat_ids)

    def coco(self):
        """The pycocotools COCO object of the split (masks for the oracle label maps)."""
        return read_coco(self.annotations)

    def samples(self) -> list[Sample]:
        """Training samples whose `label` is the image's multi-hot vector (TrainConfig label='multihot')."""
        return [Sample(p, t) for p, t in zip(self.paths, self.targets)]


def read_split(images: str | Path, annotations: str | Path) -> CocoSplit:
    """A split from its image folder and instances JSON; a missing folder or file is one clear error."""
    images, annotations = Path(images), Path(annotations)
    if not images.is_dir():
        raise FileNotFoundError(f"COCO image folder {images} does not exist; set COCO_ROOT (full scale) or "
                                "generate the mini world (python -m relabel.data).")
    coco = read_coco(annotations)
    image_ids, y, cat_ids = coco_multilabel(coco)
    paths = tuple(coco.imgs[i]["file_name"] for i in image_ids)
    missing = [p for p in paths[:1000] if not (images / p).is_file()]
    if missing:
        raise FileNotFoundError(f"{annotations} names images that are not in {images}, e.g. {missing[0]}; point "
                                "the config at the folder this annotation file belongs to.")
    names = tuple(coco.cats[c]["name"] for c in cat_ids)
    return CocoSplit(images, annotations, paths, tuple(image_ids), y.astype(np.float32), names, tuple(cat_ids))
