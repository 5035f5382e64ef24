"""The one atomic file writer: every file a run, a result or a cache leaves goes through here.

:func:`write_atomic` writes into a hidden temporary file beside the target
(``.<name>.<random>.tmp``, which ``hw4lib.runs`` recognises as a leftover of a killed write),
flushes and fsyncs it, then ``os.replace``-s it over the target, so a reader sees the old file or
the whole new one, never half of one. The file gets mode ``0o666 & ~umask``, as a plain
``open()`` would give it (``tempfile.mkstemp`` would make it 0600, private to its owner, which a
run folder shared with a group or a grader must not be). The other functions are thin wrappers.
Standard library only: torch is imported by :func:`atomic_save` alone, on use.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["write_atomic", "atomic_write_bytes", "atomic_write_text", "atomic_save"]


def _fsync_dir(folder: Path) -> None:
    """Make the rename itself durable where the platform allows (not on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _create_tmp(path: Path) -> tuple[int, Path]:
    """A new hidden file beside ``path``, opened for writing, mode ``0o666 & ~umask``."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp  # the umask applies, as for open()
        except FileExistsError:
            continue


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(f)`` on a binary file that replaces ``path`` only once complete and synced.

    On any exception (or a kill's KeyboardInterrupt) the temporary file is removed and
    ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_tmp(path)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return write_atomic(path, lambda f: f.write(data))


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: never a half-written file."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically: never a torn checkpoint."""
    import torch  # the light commands (tables, reports) use this module without torch

    return write_atomic(path, lambda f: torch.save(obj, f))
