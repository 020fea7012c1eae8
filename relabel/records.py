"""Run records: append-only JSON Lines, one record per (run, evaluator), with provenance.

Every number in a rendered table comes from a record written here. A record names the experiment (a config at a
scale), the evaluator and its metrics, plus everything needed to tell where the number came from: config and its
hash, seed, dataset, git sha and dirty flag, package versions, host, wall time and whether it is the final step.

Writes are atomic with several writers at once: each record is serialised to one line first and written with a
single `write` on an O_APPEND descriptor while holding an exclusive `flock`, so two processes appending to the
same file can neither interleave nor lose lines. Reads never skip a damaged line silently: they raise
`RecordError` naming file:line.
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
import subprocess
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
    validate(rec)
    return rec


def validate(rec: Mapping[str, Any], where: str = "record") -> None:
    """Raises RecordError if a required field is missing or mistyped, or a metric is not a finite number/list."""
    for key, typ in REQUIRED.items():
        if key not in rec:
            raise RecordError(f"{where}: missing field '{key}'")
        if not isinstance(rec[key], typ) or (typ is int and isinstance(rec[key], bool)):
            raise RecordError(f"{where}: field '{key}' has type {type(rec[key]).__name__}")
    if rec["schema"] > SCHEMA_VERSION:
        raise RecordError(f"{where}: schema {rec['schema']} is newer than this code ({SCHEMA_VERSION}); update.")
    if rec["scale"] not in SCALES:
        raise RecordError(f"{where}: scale '{rec['scale']}' is not one of {SCALES}")
    for k in ("name", "split", "size"):
        if k not in rec["dataset"]:
            raise RecordError(f"{where}: dataset lacks '{k}'")
    if not isinstance(rec.get("outcomes", {}), dict) or any(
            not isinstance(v, dict) or not {"n", "den", "ids", "counts"} <= set(v) for v in rec.get("outcomes", {}).values()):
        raise RecordError(f"{where}: field 'outcomes' must map metrics to per-image outcome entries")
    for name, value in rec["metrics"].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise RecordError(f"{where}: metric '{name}' is {value}")
        elif not isinstance(value, (list, dict)):  # curves (Fig 2/5) are lists; per-corruption tables are dicts
            raise RecordError(f"{where}: metric '{name}' has type {type(value).__name__}")


def append(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Appends one record as one line, atomically with respect to other writers of the same file."""
    validate(record)
    line = (json.dumps(record, sort_keys=True, separators=(",", ":"), allow_nan=False) + "\n").encode()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            view = memoryview(line)
            while view:  # a regular-file write is complete in practice; loop for the pathological case
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def read(path: str | os.PathLike) -> list[dict]:
    """All records of a file, in write order; a missing file is empty; a damaged line raises RecordError."""
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
            raise RecordError(f"{path}:{lineno}: not valid JSON ({e.msg}); fix or remove that line.") from None
        if not isinstance(rec, dict):
            raise RecordError(f"{path}:{lineno}: a record must be a JSON object")
        validate(rec, where=f"{path}:{lineno}")
        out.append(rec)
    return out


def read_many(paths: Iterable[str | os.PathLike]) -> list[dict]:
    return [r for p in paths for r in read(p)]


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
