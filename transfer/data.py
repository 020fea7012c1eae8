"""Where the transfer datasets live: the mini world (built on first use) and full-scale roots from the environment.

Configs only name paths (building data is never a side effect of `get_config`); an experiment calls
`ensure_data(cfg.world)` first, which generates the mini world if it is missing (a cached world is reused).
"""
from __future__ import annotations

import os
from pathlib import Path

from relabel.data import ensure_world, make_config, world_name

REPO = Path(__file__).resolve().parent.parent


def mini_data_root() -> Path:
    """The folder holding mini worlds ($RELABEL_DATA, default <repo>/data), as the pretraining section uses."""
    return Path(os.environ.get("RELABEL_DATA", REPO / "data"))


def mini_world_dir() -> Path:
    """The default mini world's folder (data/mini-v1-seed0), whether or not it has been generated yet."""
    return mini_data_root() / world_name(0, make_config())


def ensure_data(world: str) -> None:
    """Generates the default mini world at `world` if it is missing; '' (full scale): nothing to do."""
    if world and not (Path(world) / "world.json").is_file():
        built = ensure_world(Path(world).parent, seed=0, log=lambda m: print(m, flush=True))
        if built != Path(world):
            raise FileNotFoundError(f"mini world {world} is not the default world ({built}); generate it with "
                                    "python -m relabel.data or point RELABEL_DATA at its parent folder.")
