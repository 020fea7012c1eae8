"""Where the transfer datasets live: the mini world (built on first use) and full-scale roots from the environment.

Configs only name paths (building data is never a side effect of `get_config`); an experiment calls
`ensure_data(cfg.world)` first, which generates the mini world if it is missing (a cached world is reused).
"""
from __future__ import annotations

import os
from pathlib import Path

from relabel.data import ensure_world, make_config, world_name, world_test_sets

REPO = Path(__file__).resolve().parent.parent


def mini_data_root() -> Path:
    """The folder holding mini worlds ($RELABEL_DATA, default <repo>/data), as the pretraining section uses."""
    return Path(os.environ.get("RELABEL_DATA", REPO / "data"))


def mini_world_dir() -> Path:
    """The default mini world's folder (data/mini-v1-seed0), whether or not it has been generated yet."""
    return mini_data_root() / world_name(0, make_config())


def ensure_data(world: str) -> None:
    """Generates the default mini world at `world` if it is missing or was built by earlier code (relabel.data's
    ensure_world decides, under its lock); '' (full scale): nothing to do."""
    if world:
        built = ensure_world(Path(world).parent, seed=0, log=lambda m: print(m, flush=True))
        if built != Path(world):
            raise FileNotFoundError(f"mini world {world} is not the default world ({built}); generate it with "
                                    "python -m relabel.data or point RELABEL_DATA at its parent folder.")


def test_sets(world: str) -> dict:
    """What a transfer record adds to its config: the identity of the mini world's test splits it was scored on
    (relabel.data.world_test_sets), so a record of earlier test sets is stale (relabel.launch.on_current_test_sets);
    '' (full scale): nothing."""
    return {"test_sets": world_test_sets(world)} if world else {}
