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


SET_ENV = "RELABEL_SET"  # JSON {key: value}: the `--set` overrides of `results.make`; pretrain.config reads them


def env_overrides() -> dict:
    """The overrides `results.make --set` passes to every run (its worker processes and torchrun ranks inherit the
    environment): {} when none were given."""
    import json
    import os
    text = os.environ.get(SET_ENV, "")
    if not text:
        return {}
    try:
        out = json.loads(text)
    except json.JSONDecodeError:
        raise ConfigError(f"{SET_ENV} must hold a JSON object of overrides, got {text!r}") from None
    if not isinstance(out, dict):
        raise ConfigError(f"{SET_ENV} must hold a JSON object of overrides, got {text!r}")
    return out


def export_overrides(items, check) -> dict:
    """`--set KEY=VALUE` items → {key: value} (parse_overrides), refused by `check(overrides)` with a ConfigError
    before anything runs (an unknown key, a value of the wrong kind), then handed to every run of this process and
    of its children through SET_ENV (worker processes and torchrun ranks inherit it). The one way a CLI sets
    overrides: `results.make --set` and `python -m pretrain --set`."""
    import json
    import os
    over = parse_overrides(items)
    os.environ.pop(SET_ENV, None)  # no leak from an earlier call; checked against the recipe without overrides
    if not over:
        return over
    check(over)
    os.environ[SET_ENV] = json.dumps(over)
    return over
