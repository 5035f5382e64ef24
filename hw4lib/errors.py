"""The one exception type that means "the user gave us something wrong", and the one
divergence check that turns a non-finite loss into it."""

from __future__ import annotations

import math
from pathlib import Path


class UserError(Exception):
    """Bad input or a bad request: the CLI prints ``error: <message>`` on one line and exits 2.

    The message names the file or value, what is wrong, and how to fix it.
    """


def check_finite(
    loss: float, run_dir: str | Path, what: str, where: str, checkpoint: Path
) -> float:
    """``loss``, or a :class:`UserError` saying ``what`` in ``run_dir`` diverged ``where``.

    The one divergence check of nerf and ssl alike: the caller stops before anything else is
    written, so ``checkpoint`` (named when it exists) is the last good state of the run."""
    if math.isfinite(loss):
        return loss
    value = "NaN" if math.isnan(loss) else str(loss)
    kept = (
        f"the last good checkpoint is kept ({checkpoint})"
        if Path(checkpoint).is_file()
        else "no checkpoint had been written yet"
    )
    raise UserError(
        f"{run_dir}: the loss of {what} became {value} at {where}; training stopped and {kept}; "
        "lower the learning rate, or rerun with --resume if it was a fluke"
    )
