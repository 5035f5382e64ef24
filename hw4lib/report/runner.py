"""Run the numbered notebooks headlessly with papermill (``hw4 report``).

Each notebook ``notebooks/NN_name.ipynb`` runs with its ``parameters`` cell overridden
(profile, data directory, device, force) into ``reports/<profile>/NN_name.ipynb``. A run
writes ``NN_name.running.ipynb`` first and renames it on success, so a failure or Ctrl-C
never replaces an earlier good copy; the partial notebook is kept as ``NN_name.failed.ipynb``.
"""

from __future__ import annotations

import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import PROJECT_ROOT, env
from ..config import resolve_device
from ..errors import UserError
from ..parallel import Task, Workers, plan_workers, run_tasks

KERNEL_NAME = "hw4"
_NB = re.compile(r"^(\d\d)_.+\.ipynb$")


def notebooks_dir() -> Path:
    return env.path("HW4_NOTEBOOKS")


def reports_dir(profile: str) -> Path:
    return env.path("HW4_REPORTS") / profile


def discover(nb_dir: Path) -> dict[str, Path]:
    """Numbered notebooks, id ('01') -> path, in order."""
    if not nb_dir.is_dir():
        raise UserError(f"{nb_dir}: notebooks folder not found")
    found = {m.group(1): p for p in sorted(nb_dir.iterdir()) if (m := _NB.match(p.name))}
    return dict(sorted(found.items()))


def select(found: dict[str, Path], only: str | None) -> list[Path]:
    if not only:
        return list(found.values())
    ids = [s.strip().zfill(2) for s in only.split(",") if s.strip()]
    bad = [i for i in ids if i not in found]
    if bad:
        raise UserError(
            f"unknown notebook id(s) {', '.join(bad)}: choose from "
            f"{', '.join(found) or '(none found)'}"
        )
    return [found[i] for i in ids]


def kernel_name() -> str:
    """The project's kernel if installed (``make setup``), else this interpreter's python3."""
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    return KERNEL_NAME if KERNEL_NAME in specs else "python3"


@dataclass
class NotebookFailure:
    notebook: Path
    cell: int | None
    error: str

    def line(self) -> str:
        where = f"cell {self.cell}" if self.cell is not None else "before any cell"
        return f"{self.notebook}: {where} failed: {self.error}"


def run_notebook(
    src: Path, out_dir: Path, parameters: dict, kernel: str, progress: bool = True
) -> Path:
    """Execute ``src`` into ``out_dir``; raises :class:`NotebookFailure`-carrying RuntimeError."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / src.name
    running = out_dir / f"{src.stem}.running.ipynb"
    failed = out_dir / f"{src.stem}.failed.ipynb"
    known = pm.inspect_notebook(str(src))  # pass only what the parameters cell defines
    params = {k: v for k, v in parameters.items() if k in known}
    try:
        pm.execute_notebook(
            str(src),
            str(running),
            parameters=params,
            kernel_name=kernel,
            cwd=str(src.parent),
            progress_bar=progress,
        )
    except PapermillExecutionError as e:
        if running.exists():
            os.replace(running, failed)
        cell = _source_cell_number(failed, e.cell_index)
        raise NotebookRunError(NotebookFailure(src, cell, f"{e.ename}: {e.evalue}")) from None
    except BaseException:
        if running.exists():
            os.replace(running, failed)
        raise
    os.replace(running, final)
    if failed.exists():
        failed.unlink()
    return final


def _source_cell_number(executed: Path, index: int) -> int:
    """1-based number of the failing cell in the source notebook (papermill adds a parameters
    cell, and error banners to a failed notebook)."""
    import nbformat

    def tags(c) -> list:
        return c.get("metadata", {}).get("tags", [])

    try:
        cells = nbformat.read(str(executed), as_version=4).cells
    except Exception:
        return index + 1
    # papermill adds error banners to a failed notebook; ``index`` counts cells without them
    cells = [c for c in cells if "papermill-error-cell-tag" not in tags(c)][:index]
    injected = sum("injected-parameters" in tags(c) for c in cells)
    return index - injected + 1


class NotebookRunError(RuntimeError):
    def __init__(self, failure: NotebookFailure):
        super().__init__(failure.line())
        self.failure = failure


def export_html(nb: Path, html: Path) -> Path:
    """Export an executed notebook to a self-contained HTML page, code cells hidden."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter()
    exporter.exclude_input = True
    body, _ = exporter.from_notebook_node(nbformat.read(str(nb), as_version=4))
    html.write_text(body.replace("</head>", _PRINT_CSS + "</head>", 1))
    return html


#: for report.pdf (Chromium's print of the page): never cut a figure or a table across pages
_PRINT_CSS = (
    "<style>@media print { img, table, svg { break-inside: avoid; max-width: 100%; } }</style>\n"
)


def _prepare_inputs(profile: str, data_dir: str | None) -> None:
    """Before a whole report: make the generated data the notebooks will need, and build the
    DVGO kernels, all at once in worker processes (the notebooks would otherwise make them one
    after another). Nothing to do for the user's own data or what is already made."""
    from ..config import data_root
    from ..data.generated import COURSE_PARTS, missing_parts, prepare_generated
    from ..nerf.kernels import build_extension  # torch and the C++ build: only before a report

    own = data_dir or env.given("HW4_DATA") or not missing_parts(data_root(), COURSE_PARTS)
    parts: tuple[str, ...] = () if own else ("hotdog", "images")
    print(
        f"[hw4 report] preparing {', '.join(parts + ('the DVGO kernels',))}",
        file=sys.stderr,
        flush=True,
    )
    prepare_generated(profile, parts, extra=(build_extension,))
    if parts:
        _data_previews(profile)


def _data_previews(profile: str) -> None:
    """The generated scene and corpora as the report shows them (figures catalogue)."""
    from ..data import corpus, scene  # numpy, PIL, the ray tracer: only for new data
    from ..data.generated import images_dir, scene_dir
    from .tables import figures_dir

    fig = figures_dir(profile)
    scene.preview(scene_dir(profile, "hotdog", progress=False), fig / "scene_hotdog.png")
    corpus.preview(
        images_dir(profile, progress=False), fig / "corpus_samples.png", classes=5, per_class=8
    )


#: notebooks that build on each other's runs: 02 trains what 03 sweeps from, 04 pre-trains the
#: backbones 05 fine-tunes. The two chains share nothing, so they may run side by side; the
#: rest (06 reads every result) runs after them.
CHAINS = (("01", "02", "03"), ("04", "05"))


def _run_chain(
    chain: list[Path],
    out_dir: Path,
    params: dict,
    kernel: str,
    keep_going: bool,
    t0: float,
    progress: bool,
) -> tuple[list[Path], list]:
    """Run notebooks in order (stopping at a failure unless ``keep_going``); in a worker process
    when chains run side by side (its kernels inherit the worker's thread count and device)."""
    done, failures = [], []
    for nb in chain:
        print(
            f"[hw4 report] {time.time() - t0:6.0f} s  {nb.name} ({params['profile']})",
            file=sys.stderr,
            flush=True,
        )
        try:
            done.append(run_notebook(nb, out_dir, params, kernel, progress))
        except NotebookRunError as e:
            failures.append(e.failure)
            print(
                f"error: {e.failure.line()} (partial notebook: "
                f"{out_dir / (nb.stem + '.failed.ipynb')})",
                file=sys.stderr,
                flush=True,
            )
            if not keep_going:
                break
    return done, failures


def _run_chains(chains: list[list[Path]], w: Workers, **kw: Any) -> tuple[list[Path], list]:
    """The chains side by side (:mod:`hw4lib.parallel`), each :func:`_run_chain` with ``kw``;
    their notebooks and failures."""
    names = "; ".join(" -> ".join(nb.stem[:2] for nb in c) for c in chains)
    print(
        f"[hw4 report] {len(chains)} chains side by side ({w.threads} thread(s) each): {names}",
        file=sys.stderr,
        flush=True,
    )
    tasks = [
        Task(f"chain {i}", _run_chain, {"chain": c, **kw, "progress": False})
        for i, c in enumerate(chains)
    ]
    out = run_tasks(tasks, w, label="hw4 report")
    return [nb for d, _ in out.values() for nb in d], [f for _, fl in out.values() for f in fl]


def plan(
    nbs: list[Path], jobs: int | None, device: str = "cpu"
) -> tuple[list[list[Path]], list[Path], Workers]:
    """(chains to run side by side, notebooks to run one by one afterwards, the workers for the
    chains: :func:`hw4lib.parallel.plan_workers`'s rule unless ``jobs`` says how many)."""
    chains = [[nb for nb in nbs if nb.name[:2] in ids] for ids in CHAINS]
    chains = [c for c in chains if c]
    w = plan_workers("report_chains", len(chains), device, count=jobs)
    if w.count < 2 or len(chains) < 2:
        return [], list(nbs), Workers(1)
    chained = {nb for c in chains for nb in c}
    return chains, [nb for nb in nbs if nb not in chained], w


def run_report(
    profile: str,
    only: str | None = None,
    keep_going: bool = False,
    data_dir: str | None = None,
    device: str = "auto",
    force: bool = False,
    progress: bool = True,
    jobs: int | None = None,
) -> tuple[list[Path], list[NotebookFailure]]:
    """Run the selected notebooks; returns (executed notebooks, failures).

    The :data:`CHAINS` run side by side, each in order, then the rest, when
    :func:`hw4lib.parallel.plan_workers` says it pays (``jobs``: how many at once; 1: every
    notebook in order). A failure stops its chain (and
    what comes after the chains) unless ``keep_going``."""
    if data_dir and not Path(data_dir).is_dir():
        raise UserError(
            f"{data_dir}: data directory not found (expected the course layout "
            "hotdog/, mini/, office/; or leave --data out to use generated data)"
        )
    nbs = select(discover(notebooks_dir()), only)
    out_dir = reports_dir(profile)
    # interactive=False: no live curves or sliders (nobody watches a papermill run)
    params = {
        "profile": profile,
        "device": device,
        "force": force,
        "interactive": False,
        "data_dir": str(Path(data_dir).resolve()) if data_dir else "",
    }
    os.environ["HW4_PROFILE"] = profile  # the kernel inherits it
    kernel = kernel_name()
    t0 = time.time()
    if only is None and notebooks_dir() == PROJECT_ROOT / "notebooks":  # what ours need
        _prepare_inputs(profile, data_dir)
    chains, rest, w = plan(nbs, jobs, resolve_device(device))
    done, failures = [], []
    if chains:
        done, failures = _run_chains(
            chains, w, out_dir=out_dir, params=params, kernel=kernel, keep_going=keep_going, t0=t0
        )
    if not failures or keep_going:
        d, fl = _run_chain(rest, out_dir, params, kernel, keep_going, t0, progress)
        done += d
        failures += fl
    html = [nb for nb in done if nb.name.startswith("06_")]
    if html:
        from .pdf import report_pdf

        _, note = report_pdf(export_html(html[0], out_dir / "report.html"))
        print(f"[hw4 report] {time.time() - t0:6.0f} s  {note}", file=sys.stderr, flush=True)
    print(f"[hw4 report] {time.time() - t0:6.0f} s  done", file=sys.stderr, flush=True)
    return done, failures
