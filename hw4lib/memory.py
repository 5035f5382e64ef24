"""Host memory allocation for training loops.

A training step frees and re-allocates the same large CPU tensors every iteration. glibc's
``malloc`` serves blocks above its mmap threshold (128 kB, growing to at most 32 MB) with fresh
``mmap`` pages and unmaps them on ``free``, so every step zero-fills its working set again
through page faults: on a 2-core CPU that was 27% of a DVGO fine step at 800 px on an idle
machine, more beside other jobs (docs/experiments.md, 2026-12-01). :func:`keep_freed_memory`
makes ``malloc`` keep freed memory for reuse instead. It changes no number, only where the
bytes come from; the cost is that the process keeps its peak heap until it exits.
"""

from __future__ import annotations

import ctypes
import ctypes.util

_M_TRIM_THRESHOLD = -1  # mallopt parameters (glibc malloc.h)
_M_MMAP_MAX = -4
_DONE: bool | None = None


def keep_freed_memory() -> bool:
    """Ask glibc's ``malloc`` to keep freed memory (no mmap'ed blocks, no trimming of the heap).

    Idempotent; True when in effect, False where the C library is not glibc (macOS, musl).
    """
    global _DONE
    if _DONE is None:
        _DONE = False
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name) if name else None
            mallopt = getattr(libc, "mallopt", None) if libc is not None else None
            if mallopt is not None and getattr(libc, "gnu_get_libc_version", None) is not None:
                _DONE = bool(mallopt(_M_MMAP_MAX, 0)) and bool(
                    mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
                )
        except OSError:
            _DONE = False
    return _DONE
