"""Training curves that update in place while a notebook runs interactively.

A trainer calls ``on_row(row)`` after each history row (DVGO: every iteration; BYOL: every logged
step). :class:`LivePlot` keeps the rows and, in a live JupyterLab session, draws one figure at
the first row (a single display, updated in place afterwards) and redraws it no more than once
per ``min_interval`` seconds and never more than ``budget`` of the elapsed time, so the
training loop is barely slowed. Under papermill
(the notebooks' ``interactive = False``) and outside a kernel it only keeps the rows: the saved
figure drawn after training is the output.
"""

from __future__ import annotations

import io
import time
from typing import Any, Callable, Mapping, Sequence

Row = Mapping[str, Any]


def in_kernel() -> bool:
    """True inside a Jupyter kernel (where a display can be updated), False in a plain process."""
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    shell = get_ipython()
    return shell is not None and getattr(shell, "kernel", None) is not None


def figure_png(fig) -> bytes:
    """The figure as PNG bytes; the figure is closed (so the inline backend never shows it)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


class LivePlot:
    """Rows in, one figure redrawn in place (throttled by time).

    ``draw(rows)`` returns a matplotlib figure from every row so far (tagged with ``"series"``
    when rows come from :meth:`series`). ``interactive`` False (papermill) never draws.
    """

    def __init__(
        self,
        draw: Callable[[list[dict]], Any],
        interactive: bool = True,
        min_interval: float = 1.0,
        budget: float = 0.05,
        clock: Callable[[], float] = time.perf_counter,
    ):
        self.draw = draw
        self.live = bool(interactive) and in_kernel()
        self.min_interval = min_interval
        self.budget = budget
        self.clock = clock
        self.rows: list[dict] = []
        self.redraws = 0
        self.draw_seconds = 0.0
        self._handle = None
        self._last = 0.0
        self._wait = min_interval

    def __call__(self, row: Row) -> None:
        self.rows.append(dict(row))
        if self.live and (self._handle is None or self.clock() - self._last >= self._wait):
            self.refresh()

    def series(self, name: str) -> Callable[[Row], None]:
        """An ``on_row`` for one of several runs drawn on the same figure (rows get ``series``)."""
        return lambda row: self({**row, "series": name})

    def refresh(self) -> None:
        """Draw now and show it in the one display of this plot (created on the first draw)."""
        from IPython.display import Image, display

        t0 = self.clock()
        img = Image(data=figure_png(self.draw(self.rows)), format="png")
        if self._handle is None:
            self._handle = display(img, display_id=True)
        else:
            self._handle.update(img)
        dt = self.clock() - t0
        self.redraws += 1
        self.draw_seconds += dt
        self._last = self.clock()
        # wait long enough that drawing takes at most ``budget`` of the time
        self._wait = max(self.min_interval, dt / self.budget)

    def finish(self) -> None:
        """A last draw with every row, when this plot has been shown at all."""
        if self.live and self._handle is not None:
            self.refresh()


def dvgo_rows_to_history(rows: Sequence[Row]) -> tuple[dict[str, list], int]:
    """DVGO rows (``stage``, ``loss``, ``psnr``, ``seconds``) -> (history, coarse iterations)."""
    hist = {k: [float(r[k]) for r in rows] for k in ("loss", "psnr", "seconds")}
    return hist, sum(r["stage"] == "coarse" for r in rows)


def dvgo_curves(interactive: bool = True, data: str = "live", **kw) -> LivePlot:
    """Live loss / PSNR of DVGO training, drawn like the saved ``nerf_training_curves``."""
    from .figures import training_curves  # matplotlib: only when curves are drawn

    return LivePlot(
        lambda rows: training_curves(*dvgo_rows_to_history(rows), data), interactive, **kw
    )


def ssl_curves(interactive: bool = True, data: str = "live", **kw) -> LivePlot:
    """Live loss / kNN accuracy of the BYOL run then the supervised one (one
    :meth:`LivePlot.series` each, in that order), drawn like the saved
    ``ssl_pretrain_curves``."""
    from .figures import pretrain_curves  # matplotlib: only when curves are drawn

    def draw(rows: list[dict]):
        names = list(dict.fromkeys(r["series"] for r in rows)) + [None, None]
        byol, sup = ({"history": [r for r in rows if r["series"] == n]} for n in names[:2])
        return pretrain_curves(byol, sup, data)

    return LivePlot(draw, interactive, **kw)
