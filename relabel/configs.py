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
