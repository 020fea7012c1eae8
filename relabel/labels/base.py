"""The label-source registry: `register_label_source`, the `LabelSource` defaults, `make_source` (see
relabel/labels/__init__.py for what a source declares)."""
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
