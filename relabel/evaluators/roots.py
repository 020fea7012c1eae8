"""Where each benchmark's files are: one `DataRoots` per scale, built from the mini world or a full data root.

The same evaluators read both: `DataRoots.mini(world)` points at a generated mini world, `DataRoots.full(root)`
at the real datasets under one folder (each path can also be given explicitly). Which folders those are, and their
layouts, the evaluator units declare (relabel.evaluators.FULL_TREE, LAYOUTS). At full scale the files that
timm ships (ReaL labels, the ImageNet-A index list, the ImageNet synsets) are used, so no extra download is
needed for them. `relabel.evaluators.check_data(evaluators, roots)` looks, in seconds, at every file and folder
those evaluators will read (a run calls it before training, so a missing `shankar/` surfaces before 300 epochs,
not after); each evaluator checks its own paths again when it runs. Both end in one sentence naming the path, its
expected layout and how to provide it, in the words of the entry point the user came through (`given_by`: make's
IMAGENET_ROOT or the evaluation CLIs' --data-root).
"""
from __future__ import annotations

import os

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping

from relabel.records import REPO_ROOT

V2_VARIANTS = ("top-images", "matched-frequency", "threshold0.7")
# mini ImageNet-C generated on the fly: a seeded subset of val (75 corruptions each); its size is part of the test
# sets' identity (relabel.data.world_config.TEST_SETS_VERSION: 300 in v1)
MINI_C_IMAGES = 1000

# How the user told us where the data is, so a missing-data error names the right knob: 'make' (make and
# results.make read IMAGENET_ROOT, pretrain/config.py), 'cli' (eval_real/run.py, robustness/run.py: --data-root),
# None (the Python API: both are named).
GIVEN_BY = ("make", "cli", None)


# The evaluation sets' folders under the full-scale data root, as the units declare them ('val/', 'imagenetv2/', ...):
# `relabel.evaluators` fills it when the package is imported, before any DataRoots can name them.
FULL_FOLDER_NAMES: list[str] = []


def full_folders() -> str:
    """'val/, imagenetv2/, ... and bg_challenge/': the folders a full-scale data root holds for the paper's evaluators."""
    return ", ".join(FULL_FOLDER_NAMES[:-1]) + " and " + FULL_FOLDER_NAMES[-1]


def timm_info(name: str) -> Path:
    """A file timm ships in `timm/data/_info/` (ReaL labels, synset and index lists)."""
    import timm.data
    return Path(timm.data.__file__).parent / "_info" / name


@dataclass(frozen=True)
class DataRoots:
    """Paths of every evaluation set of one scale, plus the class list that gives class indices their names.

    `imagenet_c=None` means ImageNet-C is generated on the fly from val with `imagecorruptions`, on the first
    `imagenet_c_images` images of a seeded permutation of val (None: all of val); records say which.
    """
    scale: str
    name: str  # where the data came from, for records: 'mini-v1-seed0' or 'imagenet'
    classes: tuple[str, ...] = field(repr=False)  # class index -> folder name (wnid), sorted as ImageNet's
    val: Path | None = None
    real_json: Path | None = None
    shankar_json: Path | None = None
    v2: Mapping[str, Path] = field(default_factory=dict)  # V2_VARIANTS -> folder
    imagenet_a: Path | None = None
    imagenet_a_indices: Path | None = None  # fine class indices of the subset; None: from the folder names
    imagenet_c: Path | None = None
    imagenet_c_images: int | None = None
    bgc: Path | None = None
    vasudevan_json: Path | None = None  # Vasudevan et al.'s multi-label file; the mini world has none
    # the test sets' identity, which evaluation records carry in config['test_sets'] (launch.on_current_test_sets):
    # mini, the world's ('mini-v1-seed0/test-v2', relabel.data.world_test_sets); full, None (the real datasets)
    test_sets: str | None = None
    given_by: str | None = None  # GIVEN_BY: the entry point's way to point at the data, named by missing-data errors

    def __post_init__(self):
        if self.given_by not in GIVEN_BY:
            raise ValueError(f"given_by must be one of {GIVEN_BY}, got {self.given_by!r}")

    def fix_hint(self) -> str:
        """How to provide missing evaluation data, in the words of the entry point the user came through."""
        if self.scale == "mini":
            hint = "regenerate the mini world (`python -m relabel.data --out data`)"
            return hint + (" or pass --data-root WORLD_DIR" if self.given_by == "cli" else "")
        folders = full_folders()
        how = {"make": f"set IMAGENET_ROOT to the folder that holds {folders} (the tree in docs/full-scale.md)",
               "cli": f"pass --data-root DIR, the folder that holds {folders} (see --help)",
               None: f"point IMAGENET_ROOT (make, results.make) or --data-root (eval_real/run.py, "
                     f"robustness/run.py) at the folder that holds {folders}"}[self.given_by]
        return f"put the dataset there or {how}"

    @classmethod
    def mini(cls, world: str | Path, **overrides) -> "DataRoots":
        """The evaluation sets of a mini world (see relabel/data/world.py for its layout)."""
        world = Path(world)
        if not (world / "world.json").is_file():
            raise FileNotFoundError(f"{world} is not a complete mini world (no world.json); generate one with "
                                    f"`python -m relabel.data --out data`.")
        from relabel.data import world_test_sets
        classes = tuple(json.loads((world / "stats.json").read_text())["classes"])
        roots = cls(scale="mini", name=world.name, classes=classes, val=world / "val",
                    real_json=world / "val" / "real.json", shankar_json=world / "val" / "shankar.json",
                    v2={v: world / "v2" / v for v in V2_VARIANTS}, imagenet_a=world / "imagenet_a",
                    imagenet_a_indices=world / "imagenet_a" / "indices.txt", imagenet_c=None,
                    imagenet_c_images=MINI_C_IMAGES, bgc=world / "bgc", test_sets=world_test_sets(world))
        return replace(roots, **overrides)

    @classmethod
    def full(cls, data_root: str | Path | None = None, **paths) -> "DataRoots":
        """Real datasets under `data_root` (layout below); any field can be passed explicitly instead.

            <data_root>/val/<wnid>/ILSVRC2012_val_*.JPEG
            <data_root>/imagenetv2/imagenetv2-{top-images,matched-frequency,threshold0.7}-format-val/<0..999>/
            <data_root>/imagenet-a/<wnid>/                 <data_root>/imagenet-c/<corruption>/<1..5>/<wnid>/
            <data_root>/bg_challenge/<variant>/val/...     (+ in_to_in9.json from the backgrounds_challenge repo)
            <data_root>/shankar/human_accuracy_v3.0.0.json (Shankar et al.'s release)
            <data_root>/vasudevan/human_accuracy_v3.0.0.json (Vasudevan et al.'s update of Shankar et al.'s file)
        ReaL labels, ImageNet-A indices and the class list come from timm. ImageNet-C is generated on the fly from
        val when `<data_root>/imagenet-c` does not exist (slow at this scale: prefer the pre-rendered release).
        """
        r = Path(data_root) if data_root is not None else None
        under = (lambda *p: r.joinpath(*p)) if r is not None else (lambda *p: None)
        synsets = timm_info("imagenet_synsets.txt").read_text().split()
        c_default = under("imagenet-c")
        defaults = dict(
            scale="full", name="imagenet", classes=tuple(sorted(synsets)), val=under("val"),
            real_json=timm_info("imagenet_real_labels.json"),
            shankar_json=under("shankar", "human_accuracy_v3.0.0.json"),
            v2={v: under("imagenetv2", f"imagenetv2-{v}-format-val") for v in V2_VARIANTS} if r else {},
            imagenet_a=under("imagenet-a"), imagenet_a_indices=timm_info("imagenet_a_indices.txt"),
            imagenet_c=c_default if c_default is not None and c_default.is_dir() else None,
            imagenet_c_images=None, bgc=under("bg_challenge"),
            vasudevan_json=under("vasudevan", "human_accuracy_v3.0.0.json"), given_by=None)
        unknown = sorted(set(paths) - set(defaults))
        if unknown:
            raise ValueError(f"unknown DataRoots field(s) {unknown}; valid: {sorted(defaults)}")
        defaults.update({k: (Path(v) if isinstance(v, (str, Path)) and k != "given_by" else v)
                         for k, v in paths.items()})
        if isinstance(defaults["v2"], Mapping):
            defaults["v2"] = {k: Path(v) for k, v in defaults["v2"].items() if v is not None}
        return cls(**defaults)

    @classmethod
    def for_scale(cls, scale: str, root: str | Path | None = None, given_by: str | None = "cli") -> "DataRoots":
        """mini: a world folder, or a folder holding the default world (default: $RELABEL_DATA, else <repo>/data,
        where the default world is generated if missing); full: the data root (required). `given_by`: see GIVEN_BY (the CLIs')."""
        if scale == "mini":
            from relabel.data import ensure_world, make_config, world_name
            if root is None:
                root = ensure_world(Path(os.environ.get("RELABEL_DATA", REPO_ROOT / "data")), seed=0,
                                    log=lambda _: None)
            elif not (Path(root) / "world.json").is_file():
                root = Path(root) / world_name(0, make_config())  # a folder of worlds, as `--out` made it
            return cls.mini(root, given_by=given_by)
        if scale == "full":
            if root is None:
                how = "set IMAGENET_ROOT" if given_by == "make" else "pass --data-root DIR"
                raise FileNotFoundError(f"full scale needs the folder that holds {full_folders()}; {how}.")
            return cls.full(root, given_by=given_by)
        raise ValueError(f"scale must be 'mini' or 'full', got '{scale}'")
