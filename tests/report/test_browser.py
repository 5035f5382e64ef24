"""Notebooks 01 and 02 as a person uses them: JupyterLab in headless Chromium (Playwright,
driving the system's browser), the project's kernel, Run All under the smoke profile.

Checks what a person would see: no error output, tqdm bars drawn as progress widgets (not
"Loading widget..." or raw text), the figures, one live training figure, and a view slider that
renders a new image when moved. Screenshots go to ``reports/browser/``. Skipped with one line when
Chromium, Playwright or the ``hw4`` kernel is missing.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from hw4lib import PROJECT_ROOT
from hw4lib.report.pdf import find_chromium

SHOTS = PROJECT_ROOT / "reports" / "browser"
# a JupyterLab server and Chromium, minutes: outside `make test-fast`
pytestmark = [pytest.mark.browser, pytest.mark.slow]

RUN_TIMEOUT_S = 300  # one notebook's Run All under smoke (measured: well under a minute)


def _requirements() -> str | None:
    """Why the test cannot run here, or None."""
    if find_chromium() is None:
        return "no Chromium (apt-get install chromium, or set $HW4_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return 'playwright is not installed (pip install -e ".[dev]" installs it)'
    from jupyter_client.kernelspec import KernelSpecManager

    if "hw4" not in KernelSpecManager().find_kernel_specs():
        return "the hw4 kernel is not installed (make setup installs it)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_notebook(src: Path, dst_dir: Path, force: bool) -> Path:
    """A copy to open in the browser; ``force`` sets ``force = True`` in its parameters cell so
    the run trains (a person's first run) instead of reusing a finished smoke run."""
    nb = json.loads(src.read_text())
    if force:
        cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
        text = "".join(cell["source"])
        assert "force = False" in text, f"{src.name}: parameters cell has no 'force = False'"
        cell["source"] = text.replace("force = False", "force = True")
    dst = dst_dir / src.name
    dst.write_text(json.dumps(nb, indent=1))
    return dst


def _settings(user_dir: Path) -> None:
    """JupyterLab user settings: every cell kept in the page (no windowing, so the checks see
    all outputs) and no news pop-up."""
    nb = user_dir / "@jupyterlab" / "notebook-extension"
    nb.mkdir(parents=True)
    (nb / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    ap = user_dir / "@jupyterlab" / "apputils-extension"
    ap.mkdir(parents=True)
    (ap / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab server on a free port with a token, serving copies of notebooks 01 and 02."""
    why = _requirements()
    if why:
        pytest.skip(why)
    root = tmp_path / "nb"
    root.mkdir()
    _copy_notebook(PROJECT_ROOT / "notebooks" / "01_nerf_theory.ipynb", root, force=False)
    _copy_notebook(PROJECT_ROOT / "notebooks" / "02_dvgo_training.ipynb", root, force=True)
    _settings(tmp_path / "user-settings")
    port, token = _free_port(), secrets.token_hex(16)
    env = {
        **os.environ,
        # the kernels (children of the server) import this checkout under the smoke profile
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")])
        ),
        "HW4_PROFILE": "smoke",
        "JUPYTER_CONFIG_DIR": str(tmp_path / "jupyter-config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "jupyter-runtime"),
    }
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            f"--port={port}",
            "--ip=127.0.0.1",
            f"--ServerApp.token={token}",
            f"--ServerApp.root_dir={root}",
            "--LabApp.expose_app_in_browser=True",
            f"--LabApp.user_settings_dir={tmp_path / 'user-settings'}",
            f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
            "--LabApp.news_url=",
            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        ],
        cwd=root,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    pytest.fail(
                        "jupyter lab did not start:\n" + (tmp_path / "lab.log").read_text()[-3000:]
                    )
                time.sleep(0.3)
        yield {"base": base, "token": token, "log": tmp_path / "lab.log"}
    finally:
        proc.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


_OPEN = """async (path) => {
  const app = window.jupyterapp;
  await app.commands.execute('application:close-all');
  const nb = await app.commands.execute('docmanager:open', {path: path});
  window.__hw4_nb = nb;
  await nb.context.ready;
  await nb.sessionContext.ready;
  const k = nb.sessionContext.session.kernel;
  return {name: k.name, display: nb.sessionContext.kernelDisplayName, id: nb.node.id};
}"""

_RUN_ALL = """() => {
  window.__hw4_done = undefined;
  const nb = window.__hw4_nb;
  nb.content.activate();
  window.jupyterapp.commands.execute('notebook:run-all-cells')
    .then(ok => { window.__hw4_done = {ok: ok}; },
          e => { window.__hw4_done = {ok: false, e: String(e)}; });
}"""

_IDLE = """() => window.__hw4_done !== undefined
  && window.__hw4_nb.sessionContext.session.kernel.status === 'idle'"""

_CELLS = """() => window.__hw4_nb.content.widgets.filter(c => c.model.type === 'code').map(c => ({
  source: c.model.sharedModel.getSource().slice(0, 300),
  count: c.model.executionCount,
  outputs: c.model.outputs.toJSON().map(o => ({type: o.output_type, ename: o.ename || null,
    mimes: o.data ? Object.keys(o.data) : []})),
}))"""


def _run_notebook(page, name: str):
    """Open ``name`` in JupyterLab, check its kernel, Run All, wait: (its panel, the code
    cells' state)."""
    kernel = page.evaluate(_OPEN, name)
    assert kernel["name"] == "hw4", f"{name}: opened with kernel {kernel}, not the project's hw4"
    page.evaluate(_RUN_ALL)
    page.wait_for_function(_IDLE, timeout=RUN_TIMEOUT_S * 1000, polling=500)
    assert page.evaluate("() => window.__hw4_done.ok"), page.evaluate("() => window.__hw4_done")
    page.evaluate("() => window.__hw4_nb.context.save()")  # closing it later asks no question
    return page.locator(f"#{kernel['id']}"), page.evaluate(_CELLS)


def _settled_count(locator, settle_s: float = 1.0, timeout_s: float = 20.0) -> int:
    """How many elements match once the count has stopped changing for ``settle_s``: outputs
    and widgets render in the page a moment after the kernel reports the cell done."""
    last, since, deadline = locator.count(), time.time(), time.time() + timeout_s
    while time.time() < deadline:
        time.sleep(0.2)
        now = locator.count()
        if now != last:
            last, since = now, time.time()
        elif time.time() - since >= settle_s and now > 0:
            break
    return last


def _check_clean(nb, name: str, cells: list[dict]) -> None:
    """Every code cell ran, no error output, no traceback, no text progress bar, no widget that
    failed to load."""
    not_run = [c["source"] for c in cells if c["count"] is None]
    assert not not_run, f"{name}: cells that did not run: {not_run}"
    errors = [
        (c["source"], o["ename"]) for c in cells for o in c["outputs"] if o["type"] == "error"
    ]
    assert not errors, f"{name}: error outputs: {errors}"
    stderr = nb.locator('.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')
    texts = stderr.all_inner_texts()
    assert not [t for t in texts if "Traceback" in t], f"{name}: a traceback was printed"
    assert not [t for t in texts if re.search(r"\d+%\|", t)], (
        f"{name}: a progress bar was printed as text, not drawn as a widget"
    )
    body = nb.inner_text()
    assert "Loading widget" not in body and "Error displaying widget" not in body, (
        f"{name}: a widget did not render"
    )


def _shot(page, locator, path: Path) -> None:
    locator.scroll_into_view_if_needed()
    page.wait_for_timeout(300)  # let the scroll settle before the picture
    page.screenshot(path=str(path))


def test_notebooks_01_and_02_run_in_jupyterlab(lab):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=find_chromium(),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"],
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{lab['base']}/lab?reset&token={lab['token']}")
            page.wait_for_function("() => !!window.jupyterapp", timeout=90_000)
            page.evaluate("() => window.jupyterapp.restored.then(() => true)")

            # ---- 01: the theory checks and the activation figure
            nb, cells = _run_notebook(page, "01_nerf_theory.ipynb")
            _check_clean(nb, "01", cells)
            assert _settled_count(nb.locator(".jp-OutputArea-output img")) >= 1, "01: no figure"
            checks = nb.locator(".jp-OutputArea-output", has_text="sum of weights = ")
            assert _settled_count(checks) == 1 and "0.89030" in checks.inner_text()
            _shot(page, nb.locator(".jp-OutputArea-output img").last, SHOTS / "01_nerf_theory.png")
            t01 = time.perf_counter() - t0

            # ---- 02: training with bars and the live curve, figures, the view sliders
            nb, cells = _run_notebook(page, "02_dvgo_training.ipynb")
            _check_clean(nb, "02", cells)
            bars = nb.locator(".jp-OutputArea-output .widget-hprogress")
            assert _settled_count(bars) >= 2, "02: the coarse and fine tqdm bars are not widgets"
            train = next(c for c in cells if "live.dvgo_curves" in c["source"])
            live = [o for o in train["outputs"] if "image/png" in o["mimes"]]
            assert len(live) == 1, f"02: the live curve should be one figure, got {len(live)}"
            imgs = nb.locator(".jp-OutputArea-output img")
            # scene box, live curve, training curves, val renders, orbit GIF, the view
            n_imgs = _settled_count(imgs)
            assert n_imgs >= 6, f"02: {n_imgs} images shown, expected at least 6"
            gif = nb.locator('.jp-OutputArea-output img[src^="data:image/gif"]')
            assert _settled_count(gif) == 1, "02: the orbit GIF is not shown as an image"
            train_area = nb.locator(".jp-Cell", has_text="live.dvgo_curves")
            _shot(page, train_area, SHOTS / "02_training_live_curve.png")

            view = nb.locator(".hw4-scene-view")
            assert _settled_count(view) == 1, "02: no view sliders"
            img = view.locator("img")
            before = img.get_attribute("src")
            note = view.locator(".hw4-view-note").inner_text()
            assert note.startswith("azimuth 0°"), note
            handle = view.locator(".widget-slider").first.locator(".noUi-handle").first
            handle.focus()
            page.keyboard.press("ArrowRight")  # azimuth one step (5°) further
            # the image and the note are two widgets, synced by two messages: wait for both
            page.wait_for_function(
                "([el, old]) => el.querySelector('img').src !== old && el.querySelector("
                "'.hw4-view-note').innerText.startsWith('azimuth 5')",
                arg=[view.element_handle(), before],
                timeout=30_000,
            )
            assert view.locator(".hw4-view-note").inner_text().startswith("azimuth 5°")
            _shot(page, view, SHOTS / "02_view_slider.png")
            t02 = time.perf_counter() - t0 - t01
        finally:
            browser.close()
    print(f"browser test: 01 in {t01:.0f} s, 02 in {t02:.0f} s; screenshots in {SHOTS}")
    if os.environ.get("HW4_KEEP_LAB_LOG"):
        shutil.copy(lab["log"], SHOTS / "lab.log")
