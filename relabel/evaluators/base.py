"""The evaluator protocol: what an evaluator receives (`EvalContext`), returns (`EvalResult`) and raises.

An evaluator is a function `fn(ctx) -> EvalResult` registered under the name its records carry (the names
results/tables.py reads) by its unit (`relabel.evaluators.unit`). Errors a user can cause (a missing dataset
folder, a model whose class count does not match the dataset) are `EvalError`s with one sentence naming the thing
and the fix; the CLIs print them and exit 1.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
from torch.utils.data import Dataset

from relabel import outcomes as O
from relabel.data.arrange_val import flat_val_images
from relabel.data.readers import IMAGE_EXTENSIONS, list_class_folders
from relabel.metrics import CORRUPTIONS, SEVERITIES
from relabel.evaluators.roots import DataRoots
from relabel.loader import IMAGENET_MEAN, IMAGENET_STD, eval_transform, load_rgb


# Layout key -> the expected full-scale layout, quoted by the missing-data errors. `relabel.evaluators` fills it from
# the units' declarations when the package is imported, which happens before any of its modules can run.
LAYOUTS: dict[str, str] = {}


class EvalError(RuntimeError):
    """A problem with the data or the model that the user can fix; the message is one sentence saying how."""


class DatasetMissing(EvalError, FileNotFoundError):
    pass


class FlatValLayout(DatasetMissing):
    """ImageNet val as the official tarball unpacks it: 50,000 files in one folder, no class folders."""


@dataclass
class EvalResult:
    """One record's worth: metrics (numbers, or dicts for per-cell tables), the dataset, the protocol params."""
    metrics: dict
    dataset: dict  # at least name, split, size
    params: dict  # evaluation protocol; keys are prefixed (eval_*, fgsm_*, c_*, bgc_*) to sit beside a train config
    # metric name -> its per-image outcomes (relabel.outcomes.encode), for the metrics that are a mean over images
    outcomes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class EvalOptions:
    """Evaluator-specific knobs; each one that changes a number is recorded in the result's params."""
    fgsm_epsilon: float = 8 / 255  # the paper does not state ε; 8/255 is the common choice
    c_images: int | None | str = "default"  # on-the-fly ImageNet-C subset size; "default": DataRoots' value
    c_seed: int = 0
    c_corruptions: tuple[str, ...] = CORRUPTIONS
    c_severities: tuple[int, ...] = SEVERITIES


@dataclass
class EvalContext:
    model: nn.Module  # takes ImageNet-normalised images
    roots: DataRoots
    input_size: int
    crop_ratio: float
    device: torch.device
    batch_size: int
    workers: int
    progress: bool
    options: EvalOptions
    cache: dict = field(default_factory=dict)  # shared between evaluators of one model (val logits)

    @property
    def num_classes(self) -> int:
        return len(self.roots.classes)

    def transform(self, normalize: bool = True):
        t = eval_transform(self.input_size, self.crop_ratio)
        return t if normalize else type(t)(t.transforms[:-1])

    def base_params(self) -> dict:
        return {"eval_input_size": self.input_size, "eval_crop_ratio": self.crop_ratio,
                "eval_amp": "bf16" if self.device.type == "cuda" else "fp32"}

    def require(self, path: Path | None, what: str, layout_key: str, is_file: bool = False) -> Path:
        return require(path, what, layout_key, self.roots, is_file)

    def dataset(self, benchmark: str, split: str, size: int, root: Path | None, **kw) -> dict:
        return {"name": benchmark, "split": split, "size": int(size), "source": self.roots.name,
                "root": str(root) if root is not None else None, **kw}


def hits_entry(hits, paths, root: Path | None, metric_value: float, den: int = 1) -> dict:
    """The outcomes entry of a metric that is 100 · mean(hits / den) over `paths` (identified relative to `root`,
    so the same test set elsewhere on disk pairs with this one)."""
    def rel(p) -> str:
        p = Path(p)
        return p.relative_to(root).as_posix() if root is not None and p.is_relative_to(root) else p.name
    counts = torch.as_tensor(hits).to(torch.int64).cpu().numpy()
    return O.encode(counts, den, O.ids_hash(rel(p) for p in paths), metric_value)


def require(path: Path | None, what: str, layout_key: str, roots: DataRoots, is_file: bool = False) -> Path:
    """`path`, or a DatasetMissing error naming the expected layout and how to get the data (`roots.fix_hint`:
    IMAGENET_ROOT for make, --data-root for the evaluation CLIs)."""
    if path is not None and (path.is_file() if is_file else path.is_dir()):
        return path
    raise DatasetMissing(f"{what} {'file' if is_file else 'folder'} {path or '(not configured)'} does not exist; "
                         f"expected {LAYOUTS[layout_key]}; {roots.fix_hint()}.")


def has_image(folder: Path) -> bool:
    """Whether `folder` holds an image file, stopping at the first (a class folder can hold thousands)."""
    with os.scandir(folder) as it:
        return any(e.is_file() and os.path.splitext(e.name)[1].lower() in IMAGE_EXTENSIONS for e in it)


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def class_folder_samples(root: Path, classes: tuple[str, ...], what: str, layout: str = "val"
                         ) -> list[tuple[Path, int]]:
    """`root/<class>/<image>` with labels = index of the folder name in the dataset's class list (not the sorted
    position among the folders present, which shifts when a class folder is missing); the training reader's rule
    (`relabel.data.readers.list_class_folders`: an unknown folder is an error, hidden ones and lost+found skipped)."""
    try:
        _, samples = list_class_folders(root, classes, what)
    except ValueError as e:
        raise EvalError(str(e)) from None
    if not samples:
        flat = flat_val_images(root) if layout == "val" else []
        if flat:  # the official ILSVRC2012_img_val.tar unpacks flat; the devkit says each file's class
            raise FlatValLayout(
                f"{what} folder {root} holds {len(flat)} images directly (the official tarball's flat layout) but "
                f"needs one folder per class; arrange it once with `python -m relabel.data.arrange_val {root} "
                "--devkit ILSVRC2012_devkit_t12.tar.gz` (the devkit's ground truth).")
        raise EvalError(f"{what} folder {root} holds no images; expected {LAYOUTS[layout]}.")
    return samples


class PathSet(Dataset):
    """(transformed image, index) for a list of paths."""

    def __init__(self, paths, transform):
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        return self.transform(load_rgb(self.paths[i])), i


def check_classes(ctx: EvalContext) -> None:
    """The model must output one logit per dataset class; a one-image forward tells before any real work."""
    n = getattr(ctx.model, "num_classes", None)
    if not isinstance(n, int):
        was = ctx.model.training
        ctx.model.eval()
        with torch.no_grad():
            n = ctx.model(torch.zeros(1, 3, ctx.input_size, ctx.input_size, device=ctx.device)).shape[1]
        ctx.model.train(was)
    if n != ctx.num_classes:
        raise EvalError(f"the model outputs {n} classes but the {ctx.roots.name} evaluation sets have "
                        f"{ctx.num_classes}; use a checkpoint trained on this dataset (or the other --scale).")


def normalize_tensor(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


Evaluator = Callable[[EvalContext], EvalResult]
