"""Run records: append-only JSON Lines, one record per (run, evaluator), with provenance.

Every number in a rendered table comes from a record written here. A record names the experiment (a config at a
scale), the evaluator and its metrics, plus everything needed to tell where the number came from: config and its
hash, seed, dataset, git sha and dirty flag, package versions, host, wall time and whether it is the final step.

The file is an append-only log that a crash cannot corrupt. Each record is serialised to one line first and
written with a single `write` on an O_APPEND descriptor while holding an exclusive `flock`, then flushed to disk
(`fsync`), so two processes appending to the same file can neither interleave nor lose lines. A torn last line (a
crash or a full disk mid-append) is never glued to the next record: the next append moves it aside to
`<file>.torn` with a warning naming both files, and starts on a fresh line. A file never holds two records of one
(scale, experiment, evaluator, seed, config hash, overrides, final): an append that would repeat one is skipped
with a note (two `make`s that ran the same cell, a rerun of a finished evaluation). Reads never skip a damaged line
silently: they raise `RecordError` naming file:line; `duplicates` names repeated records (files written before
appends refused them).

A record made under `results.make --set` / `python -m pretrain --set` carries its overrides (`overrides`, a
JSON object; absent on records of the real recipe, so records written before the field existed read unchanged).
"""
from __future__ import annotations

import datetime as _dt
import fcntl
import functools
import hashlib
import importlib.metadata
import json
import math
import os
import platform
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

SCHEMA_VERSION = 1
SCALES = ("mini", "full")
REPO_ROOT = Path(__file__).resolve().parent.parent
# Packages whose versions go into every record (only those that are installed).
TRACKED_PACKAGES = ("torch", "torchvision", "timm", "numpy", "mmcv", "mmdet", "mmengine", "pycocotools",
                    "imagecorruptions", "scikit-learn")
REQUIRED = {"schema": int, "record_id": str, "experiment": str, "evaluator": str, "metrics": dict,
            "config": dict, "config_hash": str, "scale": str, "seed": int, "dataset": dict, "final": bool,
            "git": dict, "packages": dict, "host": str, "created": str, "wall_time_s": (int, float)}


class RecordError(ValueError):
    """A record file or record that cannot be trusted; the message names file:line where there is one."""


def runs_root() -> Path:
    """Where runs, checkpoints and records live: $RELABEL_RUNS (default: <repo>/runs)."""
    return Path(os.environ.get("RELABEL_RUNS", REPO_ROOT / "runs"))


def default_records_path(scale: str) -> Path:
    """Where records of a scale live: $RELABEL_RUNS/records/<scale>.jsonl (default: <repo>/runs)."""
    return runs_root() / "records" / f"{scale}.jsonl"


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Writes a text file so that a reader (or a kill) never sees half of it; creates its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # per process: concurrent writers never share one
    tmp.write_text(text)
    os.replace(tmp, path)
    return path


def write_json_atomic(path: str | os.PathLike, obj: dict) -> None:
    """Writes JSON so that a reader (or a kill) never sees half a file."""
    write_text_atomic(path, json.dumps(obj, indent=1))


def config_hash(config: Mapping[str, Any]) -> str:
    """A short, stable hash of a JSON-able config (key order does not matter)."""
    blob = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@functools.lru_cache(maxsize=1)
def git_state() -> dict:
    """The repository's commit and whether tracked files differ from it ({'sha': None} outside a checkout)."""
    def git(*args):
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    try:
        sha = git("rev-parse", "HEAD")
        if sha.returncode != 0:
            return {"sha": None, "dirty": None}
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip() != ""
        return {"sha": sha.stdout.strip(), "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"sha": None, "dirty": None}


@functools.lru_cache(maxsize=1)
def package_versions() -> dict:
    out = {}
    for name in TRACKED_PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def make_record(*, experiment: str, evaluator: str, metrics: Mapping[str, Any], config: Mapping[str, Any],
                scale: str, seed: int, dataset: Mapping[str, Any], wall_time_s: float, final: bool = True,
                cells: Iterable[str] = (), extra: Mapping[str, Any] | None = None,
                outcomes: Mapping[str, Any] | None = None) -> dict:
    """Builds a validated record; provenance (git, packages, host, time, config hash) is filled in here.

    `dataset` holds at least name, split and size; `cells` optionally lists table cells ('table3/relabel/real')
    the record feeds, for people reading the file; the renderer finds cells by experiment + evaluator itself.
    `outcomes` are the per-image outcomes behind metrics that are means over images (relabel.outcomes), so the
    claims ledger can count test-set noise from the records alone.
    """
    rec = {
        "schema": SCHEMA_VERSION,
        "record_id": uuid.uuid4().hex,
        "experiment": experiment,
        "evaluator": evaluator,
        "metrics": dict(metrics),
        "config": dict(config),
        "config_hash": config_hash(config),
        "scale": scale,
        "seed": int(seed),
        "dataset": dict(dataset),
        "final": bool(final),
        "cells": list(cells),
        "git": git_state(),
        "packages": package_versions(),
        "host": platform.node(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "wall_time_s": float(wall_time_s),
    }
    if extra:
        rec["extra"] = dict(extra)
    if outcomes:
        rec["outcomes"] = {k: dict(v) for k, v in outcomes.items()}
    over = active_overrides()
    if over:  # a smoke run (`--set`): never mistaken for a record of the real recipe (results.make renders it apart)
        rec["overrides"] = over
    validate(rec)
    return rec


def active_overrides() -> dict:
    """The `--set` overrides this process runs under ({} for the real recipe): relabel.configs.active_overrides."""
    from relabel import configs
    return configs.active_overrides()


def overrides_of(rec: Mapping[str, Any]) -> dict:
    """The `--set` overrides a record was made under ({}: the real recipe, as every record before the field)."""
    return dict(rec.get("overrides") or {})


def record_key(rec: Mapping[str, Any]) -> tuple:
    """What makes two records the same measurement: a file holds at most one record per key."""
    return (rec["scale"], rec["experiment"], rec["evaluator"], rec["seed"], rec["config_hash"], bool(rec["final"]),
            json.dumps(overrides_of(rec), sort_keys=True))


def validate(rec: Mapping[str, Any], where: str = "record") -> None:
    """Raises RecordError if a required field is missing or mistyped, or a metric is not a finite number/list."""
    for key, typ in REQUIRED.items():
        if key not in rec:
            raise RecordError(f"{where}: missing field '{key}'")
        if not isinstance(rec[key], typ) or (typ is int and isinstance(rec[key], bool)):
            raise RecordError(f"{where}: field '{key}' has type {type(rec[key]).__name__}")
    if rec["schema"] > SCHEMA_VERSION:
        raise RecordError(f"{where}: schema {rec['schema']} is newer than this code ({SCHEMA_VERSION}); update.")
    if "overrides" in rec and not isinstance(rec["overrides"], dict):
        raise RecordError(f"{where}: field 'overrides' has type {type(rec['overrides']).__name__}")
    if rec["scale"] not in SCALES:
        raise RecordError(f"{where}: scale '{rec['scale']}' is not one of {SCALES}")
    for k in ("name", "split", "size"):
        if k not in rec["dataset"]:
            raise RecordError(f"{where}: dataset lacks '{k}'")
    if not isinstance(rec.get("outcomes", {}), dict) or any(
            not isinstance(v, dict) or not ({"n", "den", "ids", "counts"} <= set(v)
                                            or {"n", "ids", "classes", "scores", "targets"} <= set(v))
            for v in rec.get("outcomes", {}).values()):
        raise RecordError(f"{where}: field 'outcomes' must map metrics to per-image outcome entries")
    for name, value in rec["metrics"].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise RecordError(f"{where}: metric '{name}' is {value}")
        elif not isinstance(value, (list, dict)):  # curves (Fig 2/5) are lists; per-corruption tables are dicts
            raise RecordError(f"{where}: metric '{name}' has type {type(value).__name__}")


TORN_SUFFIX = ".torn"


def torn_path(path: str | os.PathLike) -> Path:
    """Where append moves a torn last line of `path`: `<path>.torn` beside it (appended to, never overwritten)."""
    path = Path(path)
    return path.with_name(path.name + TORN_SUFFIX)


def _read_fd(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:  # a regular-file write is complete in practice; loop for the pathological case
        view = view[os.write(fd, view):]


def _mend_tail(fd: int, path: Path, data: bytes, warn) -> bytes:
    """Makes the file end on a line break before an append (the caller holds the lock); returns its data then.

    A last line without its line break is what a crash or a full disk mid-append leaves. A complete record that
    only lost its line break gets it back; anything else is moved to `<file>.torn` (fsync'd there before it is cut
    here, so a crash in between loses nothing) and cut off, with a warning naming both files."""
    if not data or data.endswith(b"\n"):
        return data
    cut = data.rfind(b"\n") + 1  # 0 when the whole file is one torn line
    tail = data[cut:]
    try:
        complete = isinstance(json.loads(tail), dict)
    except ValueError:
        complete = False
    if complete:
        _write_all(fd, b"\n")
        return data + b"\n"
    torn = torn_path(path)
    tfd = os.open(torn, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        _write_all(tfd, tail + b"\n")
        os.fsync(tfd)
    finally:
        os.close(tfd)
    os.ftruncate(fd, cut)
    warn(f"warning: {path} ended in a torn line ({len(tail)} bytes, left by an interrupted write); moved it to "
         f"{torn}, earlier records untouched")
    return data[:cut]


def append(path: str | os.PathLike, record: Mapping[str, Any], *, warn=None) -> bool:
    """Appends one record as one line, atomically with respect to other writers of the same file and to a crash.

    Under an exclusive lock: a torn last line left by an earlier crash is moved aside (`_mend_tail`), a record
    whose key (`record_key`) the file already holds is skipped with a note (returns False), and the line is
    written in one `write` and fsync'd. `warn` (default: print to stderr) receives the warnings and notes."""
    validate(record)
    warn = warn or (lambda m: print(m, file=sys.stderr, flush=True))
    line = (json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n").encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            data = _mend_tail(fd, path, _read_fd(fd), warn)
            key = record_key(record)
            # Only lines naming this config hash and seed can repeat the record (cheap: a file of long curves is
            # not parsed whole on every append).
            near = re.compile(rb'"seed":\s*%d\b' % record["seed"])
            for raw in data.split(b"\n"):
                if record["config_hash"].encode() not in raw or not near.search(raw):
                    continue
                try:
                    old = json.loads(raw) if raw.strip() else None
                    same = isinstance(old, dict) and record_key(old) == key
                except (ValueError, KeyError, TypeError):
                    continue  # a damaged line is read()'s to report, with its line number
                if same:
                    warn(f"note: {path} already holds a record of {record['experiment']} / {record['evaluator']} "
                         f"seed {record['seed']} at this recipe ({record['config_hash']}); not appended again")
                    return False
            _write_all(fd, line)
            os.fsync(fd)
            return True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read(path: str | os.PathLike) -> list[dict]:
    """All records of a file, in write order; a missing file is empty; a damaged line raises RecordError."""
    return [rec for _, rec in read_numbered(path)]


def read_numbered(path: str | os.PathLike) -> list[tuple[int, dict]]:
    """(line number, record) of every record of a file, in write order; as `read`."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    with open(path, "rb") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_SH)  # never read a line while a writer is half-way through it
        data = f.read()
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as e:
            torn = " (the file's last line, cut short by an interrupted write: the next append moves it aside to " \
                   f"{torn_path(path).name})" if not data.endswith(b"\n") and lineno == data.count(b"\n") + 1 else ""
            raise RecordError(f"{path}:{lineno}: not valid JSON ({e.msg}){torn}; fix or remove that line.") from None
        if not isinstance(rec, dict):
            raise RecordError(f"{path}:{lineno}: a record must be a JSON object")
        validate(rec, where=f"{path}:{lineno}")
        out.append((lineno, rec))
    return out


def read_many(paths: Iterable[str | os.PathLike]) -> list[dict]:
    return [r for p in paths for r in read(p)]


def duplicates(path: str | os.PathLike) -> str | None:
    """One sentence naming the first repeated measurement in a records file (two records of one `record_key` with
    different ids, as two `make`s at once wrote them before appends refused it); None if there is none. The same
    record in two files (a run's record and its published copy) is not a duplicate; nor are two runs of one cell
    in two files (a local rerun beside the committed record: the renderer shows the later one)."""
    seen: dict = {}
    for lineno, rec in read_numbered(path):
        key = record_key(rec)
        if key in seen and seen[key][1] != rec["record_id"]:
            return (f"{path}:{lineno} repeats the record on line {seen[key][0]} ({rec['experiment']} / "
                    f"{rec['evaluator']} seed {rec['seed']}, recipe {rec['config_hash']}), so a table cannot tell "
                    f"which run it shows; delete one of the two lines and render again.")
        seen.setdefault(key, (lineno, rec["record_id"]))
    return None


_SHA_CACHE: dict = {}


def file_sha256(path: str | os.PathLike) -> str:
    """A file's sha256, cached by (resolved path, size, mtime) in memory and in `<runs>/sha256-cache.json`: an
    annotator checkpoint (EfficientNet-L2) is GBs, and every recipe computation of a row that reads it asks."""
    p = Path(path).resolve()
    st = p.stat()
    key = f"{p}|{st.st_size}|{st.st_mtime_ns}"
    if key in _SHA_CACHE:
        return _SHA_CACHE[key]
    cache_file = runs_root() / "sha256-cache.json"
    try:
        disk = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        disk = {}
    if key not in disk:
        with open(p, "rb") as f:
            disk[key] = hashlib.file_digest(f, "sha256").hexdigest()
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(cache_file, disk)
        except OSError:  # a read-only runs folder: the hash is still right, only not remembered
            pass
    _SHA_CACHE[key] = disk[key]
    return disk[key]
