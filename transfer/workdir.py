"""Resumable transfer work folders: each run stamps its identity (config + backbone weights) into its folder, and a
folder left by another identity is either refused (by hand: the user decides) or set aside (under `make`, which
only re-runs a cell when its records are stale, i.e. the recipe or the backbone changed since)."""
from __future__ import annotations

from pathlib import Path

from relabel.launch import set_aside
from relabel.records import config_hash

ON_STALE = ("refuse", "set_aside")


class StaleWorkdirError(RuntimeError):
    """A work folder holds a run of another config or backbone and on_stale='refuse'."""


def handle_stale(folder: Path, old_identity, on_stale: str, what: str,
                 inputs: str = "config or backbone checkpoint") -> None:
    """`folder` holds work of `old_identity`, not the current one: raise (refuse) or move it to
    `<folder>.stale-<hash of the old identity>` so the run starts afresh (set_aside, as pretrain/ does). `inputs`
    names what its identity holds, for the messages."""
    if on_stale not in ON_STALE:
        raise ValueError(f"on_stale must be one of {ON_STALE}, got '{on_stale}'")
    if on_stale == "refuse":
        raise StaleWorkdirError(f"{folder} holds {what} with another {inputs}; delete it to start over")
    dest = set_aside(folder, config_hash({'old': old_identity}))
    print(f"{folder} held {what} of another {inputs}: moved to {dest.name}, starting afresh", flush=True)
