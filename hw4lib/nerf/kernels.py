"""DVGO's CPU kernels (``trilinear.cpp``: the grid lookup; ``march.cpp``: the ray marcher;
``adam.cpp``: the masked Adam step on a grid's touched rows), built
once on first use with torch's extension loader into one library, ``torch.ops.hw4_dvgo``.

Without a compiler, with ``$HW4_NO_EXT=1`` or on a GPU the callers (:mod:`.grid`, :mod:`.rays`)
run a pure-PyTorch path that gives the same numbers.
"""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path

import torch

from .. import env

SOURCES = ("trilinear.cpp", "march.cpp", "adam.cpp")
_EXT = None
_EXT_TRIED = False
_LOCK = threading.Lock()


def extension():
    """The compiled ops, or None (no compiler, ``$HW4_NO_EXT=1``, or build failure)."""
    global _EXT, _EXT_TRIED
    if _EXT_TRIED:
        return _EXT
    with _LOCK:
        if _EXT_TRIED:
            return _EXT
        _EXT_TRIED = True
        if env.given("HW4_NO_EXT"):
            return None
        try:
            # its import warns "No CUDA runtime is found" on every CPU machine with a CUDA_HOME:
            # noise in each notebook, not a problem here (these kernels are CPU-only)
            log = logging.getLogger("torch.utils.cpp_extension")
            level = log.level
            log.setLevel(logging.ERROR)
            try:
                from torch.utils.cpp_extension import load
            finally:
                log.setLevel(level)

            here = Path(__file__).parent
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # no FMA contraction: the marcher's samples match sample_along bit for bit
                load(
                    name="hw4_dvgo",
                    sources=[str(here / s) for s in SOURCES],
                    extra_cflags=["-O3", "-fopenmp", "-ffp-contract=off"],
                    extra_ldflags=["-fopenmp"],
                    is_python_module=False,
                    verbose=False,
                )
            _EXT = torch.ops.hw4_dvgo  # the ops the library registers (TORCH_LIBRARY)
        except Exception as e:  # no compiler / ninja: fall back, but say so once
            warnings.warn(
                f"hw4lib.nerf.kernels: C++ kernels unavailable ({e}); "
                "using the slower pure-torch path"
            )
            _EXT = None
    return _EXT


def build_extension() -> bool:
    """Build (or load) the C++ kernels now; True if they are usable. For a worker process."""
    return extension() is not None
