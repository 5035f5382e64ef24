"""Output folders written whole: build in a temporary sibling, then rename into place.

A folder a command made carries a marker file; only such a folder (or an empty one) may be
replaced by the next run, so a user's own files are never overwritten.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from ..errors import UserError


def replace_dir(tmp: Path, out: Path, marker: str, owned: bool = False) -> None:
    """Move the finished ``tmp`` folder to ``out``, replacing only a previous output (``marker``).

    ``owned``: ``out`` lies in an area only this program writes (data/generated), so a folder
    there without the marker is a stale leftover and may be replaced too.
    """
    if out.exists():
        if not owned and not (out / marker).is_file() and any(out.iterdir()):
            raise UserError(
                f"{out}: folder is not empty and was not written by this command; "
                "choose an empty or new output folder"
            )
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def make_tmp(out: Path, tag: str = "tmp") -> Path:
    """A fresh hidden folder beside ``out`` (same file system, so the final rename is atomic)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.{tag}-"))
    os.chmod(tmp, 0o755)  # mkdtemp makes 0700; the result should look like an ordinary folder
    return tmp
