"""Writes a full disk cannot corrupt: check the free space first, write a temp file beside the target, replace.

A checkpoint or label store written to a full disk (or past a file-size limit, `ulimit -f`) must leave every
earlier file as it was and say so in one sentence — what was being written, how much it needs, how much is free
and where — not a 36-line RuntimeError from torch's zip writer (`enforce fail at inline_container.cc ...
unexpected pos`), a SafetensorError, or a bus error from a memory map over a sparse file. `atomic_write` is the
one primitive the checkpoint writers use; `reserve` allocates a memory-mapped store's blocks up front.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path
from typing import Callable

import torch

# ENOSPC: the disk is full; EFBIG: a file-size limit (`ulimit -f`, RLIMIT_FSIZE); EDQUOT: a quota.
FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
# The same causes as other layers word them: safetensors' Rust writer prints the io::Error ("Os { code: 28, kind:
# StorageFull ..."); torch's C++ zip writer, given a path, loses the errno and reports a short write ("unexpected
# pos") — given a Python file, its OSError is the exception's __context__.
_FULL_TEXT = {"no space left on device": errno.ENOSPC, "code: 28,": errno.ENOSPC, "file too large": errno.EFBIG,
              "code: 27,": errno.EFBIG, "disk quota exceeded": errno.EDQUOT, "code: 122,": errno.EDQUOT}
_SHORT_WRITE = "unexpected pos"
MARGIN = 1 << 20  # beside the payload: zip/JSON headers, the file system's own blocks


def _chain(exc: BaseException | None):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def full_errno(exc: BaseException) -> int | None:
    """ENOSPC / EFBIG / EDQUOT if `exc` (or an exception it came from) says so, else None."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in FULL_ERRNOS:
            return e.errno
        text = str(e).lower()
        for words, code in _FULL_TEXT.items():
            if words in text:
                return code
    return None


def is_disk_full(exc: BaseException) -> bool:
    """Whether `exc` says the disk, a quota or a file-size limit is full (or is torch's bare short write)."""
    return full_errno(exc) is not None or any(_SHORT_WRITE in str(e) for e in _chain(exc))


def human(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def check_free_space(folder: str | os.PathLike, need: int, what: str, error: type[Exception] = OSError) -> None:
    """Raise `error` (one sentence: needed, free, where) unless `folder` has `need` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < need:
        raise error(f"not enough free space to write {what}: it needs {human(need)} and {folder} has "
                    f"{human(free)} free; free space there (or write elsewhere) and run again.")


def full_disk_sentence(what: str, folder: str | os.PathLike, exc: BaseException, kept: str) -> str:
    """The sentence for a write that a full disk, a quota or a file-size limit stopped midway."""
    code = full_errno(exc)
    try:
        free = f"{human(shutil.disk_usage(folder).free)} free in {folder}"
    except OSError:
        free = f"in {folder}"
    cause, fix = {
        errno.ENOSPC: (f"the disk is full ({free})", "free space there (or write elsewhere) and run again"),
        errno.EFBIG: ("a file-size limit (ulimit -f) was hit", "raise the limit (or write elsewhere) and run again"),
        errno.EDQUOT: (f"the disk quota is used up ({free})", "free space there (or write elsewhere) and run again"),
    }.get(code, (f"the write stopped short: a full disk or a file-size limit ({free})",
                 "free space there or raise the limit (ulimit -f), and run again"))
    return f"writing {what} stopped: {cause}; {kept}; {fix}."


def tensor_bytes(obj) -> int:
    """Bytes of the tensors in a (nested) state dict: what torch.save / safetensors will write, less headers."""
    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], need: int, *, what: str | None = None,
                 error: type[Exception] = OSError) -> Path:
    """`write(tmp)` to `<path>.tmp` in the same folder, fsync it, then rename it over `path`.

    Before: `need` bytes (+ a margin) must be free, else `error` says so and nothing is touched. During: a full
    disk or file-size limit removes the temp file and raises `error` with one sentence; `path` keeps its earlier
    content (or stays absent). A kill leaves at most `<path>.tmp`, which the next write replaces."""
    path = Path(path)
    what = what or str(path)
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.unlink(missing_ok=True)  # a killed earlier write's leftover: ours by name, and it holds disk space
    check_free_space(path.parent, need + MARGIN, what, error)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data is on disk before the rename makes it the checkpoint
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except Exception as e:
        tmp.unlink(missing_ok=True)
        if is_disk_full(e):
            kept = f"{path.name} is as it was" if path.exists() else f"no {path.name} was written"
            raise error(full_disk_sentence(what, path.parent, e, kept)) from None
        raise
    return path


def reserve(path: str | os.PathLike, size: int | None = None) -> None:
    """Allocate the blocks of `path` (its current size, or `size`) now, so that writes through a memory map can
    never meet a full disk later (which would be SIGBUS, 'Bus error', with nothing said): `posix_fallocate`,
    where the file system has it. Raises OSError (ENOSPC / EFBIG) when the disk cannot hold the file."""
    size = os.path.getsize(path) if size is None else size
    if size <= 0 or not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as e:
        if e.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):  # a file system without fallocate
            return
        raise
    finally:
        os.close(fd)
