"""hw4lib.memory: glibc keeps freed memory mapped (set once, whatever the callers)."""

from __future__ import annotations


def test_keep_freed_memory_is_idempotent():
    import platform

    from hw4lib.memory import keep_freed_memory

    first = keep_freed_memory()
    assert keep_freed_memory() is first
    if platform.system() == "Linux" and platform.libc_ver()[0] == "glibc":
        assert first is True
