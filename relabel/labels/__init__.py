"""Label sources: what a training crop is taught with, one module per source, found by name (timm's registry).

`TrainConfig.label` names a source; the trainer (relabel.train.train) asks this registry for it and has no branch
per source. A source is a class registered with `@register_label_source("name")` that says:

* `needs`: what the run must hand the trainer — "store" (a label store the source reads: a label-map store for
  'relabel', a crop-label store for 'fkd'), "teacher" (a model forwarded on every crop) or nothing;
* `collate(transform, finish)`: how a batch is put together in the loader workers (default: `collate_train`;
  'relabel' pools label maps there) — whatever it returns after (x, boxes, flips, labels, rows) reaches
  `target` as `extra`;
* `dataset(train_set)`: the training set it reads (default: as given; 'fkd' replays stored crops);
* `target(x, labels, extra, device)`: the soft target [B, C] of the batch (under no_grad, on the device);
* `losses`: the losses (`TrainConfig.loss`) it can train with, and `forwards_per_image` (model forwards its labels
  cost per training image: 1 for a teacher; Fig. 6's cost);
* `describe(train)`: a few words for a row's recipe (`python -m pretrain --help`).

Built-in sources (each module's docstring says which paper rows it feeds): onehot (with label smoothing),
relabel (LabelPooling, its Table 2 variants and the COCO multi-label rules), kd, multihot, fkd. docs/adding-a-label-
source.md shows how to add one.
"""
from __future__ import annotations

import functools
from typing import ClassVar

from relabel.configs import ConfigError
from relabel.loader import collate_train

SOURCES: dict[str, type] = {}
NEEDS = ("store", "teacher")


def register_label_source(name: str):
    """Class decorator: makes `cls` the label source `TrainConfig.label == name`."""
    def deco(cls):
        if name in SOURCES and SOURCES[name] is not cls:
            raise ValueError(f"label source '{name}' is registered twice ({SOURCES[name].__module__}, "
                             f"{cls.__module__})")
        bad = set(cls.needs) - set(NEEDS)
        if bad:
            raise ValueError(f"label source '{name}' needs {sorted(bad)}; a source can need {NEEDS}")
        cls.name = name
        SOURCES[name] = cls
        return cls
    return deco


def names() -> tuple:
    """The registered label sources, in registration order."""
    return tuple(SOURCES)


def source_class(name: str) -> type:
    if name not in SOURCES:
        raise ConfigError(f"unknown label source '{name}'; registered: {', '.join(SOURCES)} (relabel/labels/)")
    return SOURCES[name]


class LabelSource:
    """The defaults every source shares: no inputs, the plain collate, the training set as given, soft CE."""

    name: ClassVar[str] = ""
    needs: ClassVar[tuple] = ()
    losses: ClassVar[tuple] = ("ce",)
    forwards_per_image: ClassVar[int] = 0
    store_kind: ClassVar[str] = "a label store"  # what `store` must be, in words (for the error of a missing one)

    def __init__(self, cfg, *, store=None, teacher=None, teacher_input_size=None, amp: bool = False):
        self.cfg, self.store, self.teacher, self.teacher_input_size, self.amp = (cfg, store, teacher,
                                                                                 teacher_input_size, amp)

    @classmethod
    def check_config(cls, cfg) -> None:
        """Refuses a recipe this source cannot train (TrainConfig.__post_init__ calls it)."""
        if cfg.loss not in cls.losses:
            raise ValueError(f"label '{cls.name}' trains with loss {' or '.join(cls.losses)}, got '{cfg.loss}'")

    @property
    def tag(self) -> str:
        """The source as the progress line names it."""
        return self.name

    @classmethod
    def describe(cls, train: dict) -> str:
        return cls.name

    def dataset(self, train_set):
        return train_set

    def collate(self, transform, finish: bool):
        return functools.partial(collate_train, transform=transform, finish=finish)

    def target(self, x, labels, extra, device):
        raise NotImplementedError


def make_source(cfg, *, store=None, teacher=None, teacher_input_size=None, amp: bool = False) -> LabelSource:
    """The label source of `cfg.label`, given what it needs; a missing input is one sentence naming it."""
    cls = source_class(cfg.label)
    given = {"store": store, "teacher": teacher}
    for need in cls.needs:
        if given[need] is None:
            what = {"store": f"{cls.store_kind} (store=...)", "teacher": "a teacher model (teacher=...)"}[need]
            raise ValueError(f"label='{cfg.label}' needs {what}")
    return cls(cfg, store=store, teacher=teacher, teacher_input_size=teacher_input_size, amp=amp)


def needs(label: str) -> tuple:
    """What a recipe with `label` must be given (the pretrain rows build it: pretrain/experiments.py)."""
    return source_class(label).needs


# the built-in sources register themselves on import (as timm's model modules do)
from relabel.labels import onehot, relabel, kd, multihot, fkd  # noqa: E402,F401
