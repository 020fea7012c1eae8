"""StrictConfig: the mixin every frozen experiment config shares (a misspelt override is an error)."""
from __future__ import annotations

import dataclasses


class StrictConfig:
    """For frozen dataclasses: `to_dict()` and `replace(**overrides)`, which refuses keys the config lacks."""

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **overrides):
        """A copy with overrides; a misspelt key is an error, not a silently ignored option."""
        names = {f.name for f in dataclasses.fields(self)}
        bad = sorted(set(overrides) - names)
        if bad:
            raise ValueError(f"unknown {type(self).__name__} option(s) {bad}; valid: {sorted(names)}")
        return dataclasses.replace(self, **overrides)


class ConfigError(ValueError):
    """A recipe that cannot run as asked (an unknown override, a dataset smaller than one batch): one sentence
    that says what to change; the CLIs print it without a traceback."""


def parse_overrides(items) -> dict:
    """`KEY=VALUE` strings (the `--set` options of every CLI) → {key: value}, each value read as a Python literal
    (`epochs=1` → 1, `crop_scale=(0.5,1)` → a tuple) or, when it is none, kept as the bare string (`label=relabel`)."""
    import ast
    out = {}
    for item in items:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes key=value, got '{item}'")
        try:
            out[key.strip()] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key.strip()] = value
    return out


def add_set_argument(ap, what: str, example: str, records: bool = False) -> None:
    """The one `--set` option of every CLI (results.make, pretrain, transfer, multilabel_coco): the same syntax,
    parsing (parse_overrides), refusal of unknown keys and help text; `what` names the config it overrides."""
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help=(
        f"override a field of {what}: KEY=VALUE, repeatable, VALUE read as a Python literal ('train.KEY' reaches a "
        f"nested training recipe where there is one); unknown keys are refused with the valid ones listed; e.g. "
        f"{example}" + ("; records made under --set are smoke records: they carry the overrides, render under "
                        "results/rendered/<scale>/smoke/ with a banner and never count for the real recipe"
                        if records else "")))


# The `--set` overrides this process runs under: set once by the CLI that parsed them (`use_overrides`), handed
# to a worker process by its launcher as an argument (results.make's pool), never through the environment; torchrun
# ranks parse the same command line, so each sets its own. {} = the real recipe.
_ACTIVE: dict = {}


def active_overrides() -> dict:
    """The `--set` overrides of this process ({} for the real recipe): what pretrain.config applies to every recipe
    and what relabel.records stamps into every record (a smoke run is never mistaken for the real recipe)."""
    return dict(_ACTIVE)


def set_active_overrides(over: dict) -> None:
    """Makes `over` this process's overrides (a worker process: the ones its launcher parsed and checked)."""
    _ACTIVE.clear()
    _ACTIVE.update(over)


def use_overrides(items, check) -> dict:
    """`--set KEY=VALUE` items → {key: value} (parse_overrides), refused by `check(overrides)` with a ConfigError
    before anything runs (an unknown key, a value of the wrong kind), then made this process's overrides
    (`active_overrides`). The one way a CLI sets overrides: `results.make --set` and `python -m pretrain --set`."""
    over = parse_overrides(items)
    set_active_overrides({})  # no leak from an earlier call; checked against the recipe without overrides
    if over:
        check(over)
        set_active_overrides(over)
    return over
