"""The ``HW4_*`` environment variables: what each one moves and its default, in one table.

The library reads them only through this module (a test holds it to that), so ``hw4 env``
and the README's list cannot drift from what the code does. Paths are relative to the
project root unless they start with ``~`` or ``/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from . import PROJECT_ROOT


@dataclass(frozen=True)
class Variable:
    help: str
    default: str | None = None  # None: unset means "not given" (the help says what follows)
    reader: str = "hw4lib"  # who reads it: the library, or only a script/test named here


VARIABLES: dict[str, Variable] = {
    "HW4_PROFILE": Variable("profile when --profile is not given", "quick"),
    "HW4_DEVICE": Variable("device when --device is not given (auto, cpu, cuda)", "auto"),
    "HW4_DATA": Variable("course-layout data (hotdog/, mini/, office/)", "data/hw4_data"),
    "HW4_GENERATED": Variable(
        "the project's generated data, one folder a profile", "data/generated"
    ),
    "HW4_RESULTS": Variable("run folders (models, histories, results.json)", "results"),
    "HW4_REPORTS": Variable(
        "executed notebooks and figures of `hw4 report`, a folder a profile", "reports"
    ),
    "HW4_FIGURES": Variable(
        "where a run writes figures and tables (default: $HW4_REPORTS/<profile>/figures)"
    ),
    "HW4_NOTEBOOKS": Variable("the notebooks `hw4 report` runs", "notebooks"),
    "HW4_CACHE": Variable("downloaded and converted weights (LPIPS, ResNet)", "~/.cache/hw4"),
    "HW4_CHROMIUM": Variable(
        "Chromium binary for report.pdf (default: the first chromium on PATH)"
    ),
    "HW4_NO_EXT": Variable("1: skip the DVGO C++ kernels, use the pure-PyTorch path"),
    "HW4_TEST_PAUSE_AT_STEP": Variable(
        "tests only: stop BYOL pre-training at this step, as if interrupted"
    ),
    "HW4_NERF_RUN": Variable(
        "the trained DVGO run hw4_1.sh renders (default: "
        "runs/full/nerf/hotdog, else runs/quick/nerf/hotdog)",
        reader="hw4_1.sh",
    ),
    "HW4_SSL_RUN": Variable(
        "the fine-tuned run hw4_2.sh predicts with", "runs/full/ssl/finetune_C", reader="hw4_2.sh"
    ),
    "HW4_REQUIRE_LPIPS": Variable(
        "1: the LPIPS tests fail, not skip, without the VGG weights", reader="tests"
    ),
    "HW4_KEEP_LAB_LOG": Variable(
        "1: the browser test keeps JupyterLab's log beside its screenshots", reader="tests"
    ),
}


def _variable(name: str) -> Variable:
    if name not in VARIABLES:
        raise KeyError(f"{name}: not an HW4_* variable of hw4lib.env.VARIABLES")
    return VARIABLES[name]


def get(name: str) -> str | None:
    """The variable's value, or its default (None when it has none); empty counts as unset."""
    default = _variable(name).default
    return os.environ.get(name) or default


def given(name: str) -> bool:
    """Whether the user set the variable (to anything non-empty)."""
    _variable(name)
    return bool(os.environ.get(name))


def path(name: str) -> Path | None:
    """The variable as a path: as given (``~`` expanded), else its default under the project
    root; None when it has no default."""
    if given(name):
        return Path(os.environ[name]).expanduser()
    default = _variable(name).default
    if default is None:
        return None
    p = Path(default).expanduser()
    return p if p.is_absolute() else PROJECT_ROOT / p


def describe() -> list[tuple[str, str, str, str]]:
    """``(name, value now or "", default or "", help)`` for each variable, in table order."""
    return [
        (
            k,
            os.environ.get(k, ""),
            v.default or "",
            v.help + ("" if v.reader == "hw4lib" else f" [read by {v.reader}]"),
        )
        for k, v in VARIABLES.items()
    ]
