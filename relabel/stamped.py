"""Stamped artifacts: build a shared file once per identity of all its inputs, under a lock, stale work set aside.

Every shared artifact (the mini world, an annotator, label-map stores, imports, the clean list, the extra subset,
COCO maps, checkpoints) is made by one primitive, `artifact()`: built under a lock (`artifact_lock`), stamped with
the identity of *all* its inputs (`<path>.identity.json`), a stale one set aside, written atomically, and
rank-aware under `torchrun` (the process group exists before any lock; rank 0 takes the locks; rank 0 alone builds
while the others wait at a barrier, except collective builders — DDP training, sharded annotation — which every
rank enters).

Stale work, wherever it is found (an artifact, a job's workdir, a trainer's checkpoints, a transfer grid, a mini
world of earlier code), meets one policy, `set_aside_stale()`: never reused, never deleted, moved beside itself as
`<name>.stale-<hash of what it was made from>` (`.stale-unstamped` when it bears no stamp), or refused with a
StaleWorkError where a user running by hand should decide. The experiment registry and job runner that use this
live in relabel.launch; this module knows nothing of experiments.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import platform
import shutil
from pathlib import Path
from typing import Callable, Iterable

from relabel import records as R

STAMP_SUFFIX = ".identity.json"
# The one policy for work without a stamp (made before stamps, or by hand): never trusted — set aside as
# `<name>.stale-unstamped` and made again. (Before, three policies coexisted: taken as is, judged by the trainer's
# last.pt, set aside.)
UNSTAMPED = "unstamped"
# What a caller does with stale work: set it aside and start afresh (`make`, which reruns a cell only when its
# records are stale), or refuse (a run by hand: the user decides).
ON_STALE = ("set_aside", "refuse")
_SOLO = [0]  # > 0 while this process (rank 0) builds an artifact alone: nested artifacts need no collectives


class StaleWorkError(RuntimeError):
    """Work made from other inputs than the current ones, found where the caller refuses to set it aside
    (on_stale='refuse'): one sentence naming the folder and the fix."""


class LockUnavailable(FileNotFoundError):
    """A lock that cannot be taken because its folder is read-only: one sentence naming the folder (a user error,
    caught with FileNotFoundError by the drivers)."""


def main_rank() -> bool:
    """Whether this process decides and writes: rank 0 of a torchrun launch (a plain process is), or the rank
    building an artifact alone."""
    from relabel import dist
    return _SOLO[0] > 0 or dist.is_main()


def barrier() -> None:
    """dist.barrier(), except inside a build of rank 0 alone (the other ranks are not there to meet)."""
    if not _SOLO[0]:
        from relabel import dist
        dist.barrier()


def agree(value):
    """Rank 0's `value` on every rank (dist.agree), or `value` itself inside a build of rank 0 alone."""
    if _SOLO[0]:
        return value
    from relabel import dist
    return dist.agree(value)


def as_stored(identity: dict) -> dict:
    return json.loads(json.dumps(identity))  # tuples → lists, as a record or a stamp stores it


def stamp_path(path: str | os.PathLike) -> Path:
    """Where an artifact's identity stamp lives: `<path>.identity.json`, beside it (moved aside with it)."""
    return Path(str(path) + STAMP_SUFFIX)


def read_stamp(stamp: Path) -> str | None:
    """The identity hash in a stamp file (None: no stamp)."""
    return json.loads(stamp.read_text())["hash"] if stamp.is_file() else None


def write_stamp(stamp: Path, identity: dict) -> str:
    """Writes `{hash, identity}` to `stamp` atomically; returns the hash."""
    ident = as_stored(identity)
    h = R.config_hash(ident)
    R.write_json_atomic(stamp, {"hash": h, "identity": ident})
    return h


def set_aside(path: str | os.PathLike, tag: str) -> Path:
    """Moves a file or folder to `<path>.stale-<tag>` beside it (replacing an older one of that tag), so the
    current inputs start afresh without deleting the old work; returns where it went."""
    path = Path(path)
    dest = path.with_name(f"{path.name}.stale-{tag}")
    if dest.is_dir():
        shutil.rmtree(dest)
    elif dest.exists():
        dest.unlink()
    path.rename(dest)
    return dest


def set_aside_stale(path: str | os.PathLike, found: str | None, current: bool, why: str, *,
                    companions: Iterable = (), contents: bool = False, on_stale: str = "set_aside",
                    say: Callable[[str], None] | None = None) -> list[Path]:
    """The one stale-work policy: work made from other inputs than the current ones is never reused and not deleted
    but set aside (only an earlier stale copy of the same tag is replaced: of the same inputs, or unstamped too, so
    the stale copies of one path stay bounded on disk).

    path: the work (a file or folder); `companions` go with it (an artifact's stamp, the training folder it came
      from). contents=True: the folder stays (a job's workdir, whose lock lives in it) and what it holds is set
      aside, all but locks and earlier stale work.
    found: the hash of the identity the work was made under; it names where the work goes, `<name>.stale-<found>`.
      None: the work bears no stamp — never trusted, set aside as `.stale-unstamped`.
    current: whether that identity is the current one (the caller's comparison: stamp hashes, or the trainer's
      config equality). Current work, and no work at all, stays as it is.
    on_stale: 'set_aside', or 'refuse': StaleWorkError (`why` and the fix in one sentence), nothing moved.
    Says one line (`path` `why`, e.g. 'was made from other inputs (3f2a…)') and returns where each piece went
    ([]: nothing was stale)."""
    if on_stale not in ON_STALE:
        raise ValueError(f"on_stale must be one of {ON_STALE}, got '{on_stale}'")
    path = Path(path)
    if current:
        return []
    if contents:
        work = sorted(p for p in path.iterdir() if not p.name.endswith(".lock") and ".stale-" not in p.name) \
            if path.is_dir() else []
    else:
        work = [Path(p) for p in (path, *companions) if Path(p).exists()]
    if not work:
        return []
    if on_stale == "refuse":
        raise StaleWorkError(f"{path} {why}; delete it to start over")
    tag = found or UNSTAMPED
    moved = [set_aside(p, tag) for p in work]
    (say or (lambda m: print(m, flush=True)))(f"{path} {why}: set aside as .stale-{tag}, starting afresh")
    return moved


def artifact(path: str | os.PathLike, identity: dict | None, build: Callable[[], None], *,
             ready: Callable[[], bool] | None = None, collective: bool = False, companions: Iterable = (),
             lock: str | os.PathLike | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Makes the shared artifact `path` once per identity and returns it; every artifact goes through here.

    identity: everything the artifact is made from, JSON-able (the annotator's checkpoint sha256 or release
      fingerprint, dtype, k, the dataset's fingerprint; a training recipe's hash). Stamped beside the artifact as
      `<path>.identity.json` *before* the build, so a killed resumable build (annotation, import, training) resumes
      only into work of the same identity. None: the path's own name is its identity (the mini world is named by
      its generator version, seed and knobs) and nothing is stamped.
    build(): writes `path` atomically (or resumably). `ready()` says whether it is complete (default: it exists).
    Staleness (`set_aside_stale`): a stamp of another identity → the artifact, its `companions` (e.g. the training
      folder it came from) and the stamp are set aside as `.stale-<old hash>`; an artifact *without* a stamp is set
      aside as `.stale-unstamped` — nothing unstamped is trusted. Then it is built afresh.
    torchrun: rank 0 takes the lock and decides; every rank gets its decision (one broadcast). collective=False:
      rank 0 builds alone while the others wait at a barrier (nested artifacts inside need no collectives);
      collective=True (DDP training, sharded annotation): every rank calls build(), rank 0 holding the lock, and
      only rank 0 should write the files that are not shards.
    """
    path = Path(path)
    ready = ready or path.exists
    say = log or (lambda m: print(m, flush=True))
    if collective and _SOLO[0]:
        raise RuntimeError(f"{path}: a collective build (all ranks) cannot run inside a build of rank 0 alone; make "
                           "the outer artifact collective")
    from relabel import dist
    dist.init_distributed()  # the process group before any lock (a no-op outside torchrun)
    with artifact_lock(lock if lock is not None else path):
        todo = False
        if main_rank():
            if identity is not None:
                stamp = stamp_path(path)
                got = read_stamp(stamp)
                made = f"from other inputs ({got})" if got else "without an identity stamp"
                set_aside_stale(path, got, got == R.config_hash(as_stored(identity)), f"was made {made}",
                                companions=(*companions, stamp), say=say)
            todo = not ready()
            if todo and identity is not None:
                write_stamp(stamp_path(path), identity)
        if agree(todo):
            if collective:
                build()
            elif main_rank():
                _SOLO[0] += 1
                try:
                    build()
                finally:
                    _SOLO[0] -= 1
        barrier()
    return path


@contextlib.contextmanager
def artifact_lock(path: str | os.PathLike):
    """Exclusive lock (`<path>.lock`) for making a shared artifact that several jobs may need. Under torchrun only
    rank 0 takes it (the other ranks wait for rank 0 at the next collective, never on the file), so a rank never
    sits on a lock its peers need to finish a collective."""
    if not main_rank():
        yield
        return
    lock = Path(str(path) + ".lock")
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)  # never truncated before it is ours: it names the holder
    except OSError as e:
        raise LockUnavailable(f"cannot open the lock {lock} ({e.strerror}): {lock.parent} must be writable, since "
                              f"the lock there keeps two processes from making the same thing at once; make it "
                              f"writable or point RELABEL_RUNS / RELABEL_DATA elsewhere") from None
    with os.fdopen(fd, "r+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = f.read().strip() or "another process"
            print(f"waiting for {lock}, held by {holder}", flush=True)
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()} on host {platform.node()}\n")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
