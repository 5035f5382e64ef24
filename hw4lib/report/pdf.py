"""``report.pdf``: Chromium's print-to-PDF of ``report.html`` (when Chromium is installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .. import env

#: names of a Chromium binary, tried in order (``$HW4_CHROMIUM`` first)
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """Path of a Chromium (``$HW4_CHROMIUM``, else the first of :data:`CHROMIUM_NAMES` on PATH)."""
    given = env.get("HW4_CHROMIUM")
    if given:
        return given if Path(given).is_file() else shutil.which(given)
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    return None


def chromium_flags(user_data_dir: str) -> list[str]:
    """Headless flags that work as root, in containers and without a GPU."""
    return [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--no-default-browser-check",
        f"--user-data-dir={user_data_dir}",
    ]


def print_pdf(
    html: str | Path, pdf: str | Path, chromium: str | None = None, timeout: float = 300.0
) -> Path:
    """Print ``html`` to ``pdf`` with headless Chromium; the file appears only when complete.

    Raises ``FileNotFoundError`` without Chromium, ``RuntimeError`` when it fails (with its
    last line of output)."""
    exe = chromium or find_chromium()
    if exe is None:
        raise FileNotFoundError(
            "no Chromium found (apt-get install chromium, or set $HW4_CHROMIUM)"
        )
    html, pdf = Path(html).resolve(), Path(pdf)
    tmp = pdf.with_name(f".{pdf.name}.tmp")
    with tempfile.TemporaryDirectory(prefix="hw4-chromium-") as profile:
        cmd = [
            exe,
            *chromium_flags(profile),
            "--no-pdf-header-footer",
            f"--print-to-pdf={tmp}",
            html.as_uri(),
        ]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            tmp.unlink(missing_ok=True)
            raise RuntimeError(f"{exe}: printing {html.name} took over {timeout:.0f} s") from None
    ok = tmp.is_file() and tmp.read_bytes()[:5] == b"%PDF-"
    if not ok:
        tmp.unlink(missing_ok=True)
        last = (p.stderr or p.stdout).strip().splitlines()[-1:] or [f"exit {p.returncode}"]
        raise RuntimeError(f"{exe}: printing {html.name} failed: {last[0]}")
    os.replace(tmp, pdf)
    return pdf


def report_pdf(html: Path) -> tuple[Path | None, str]:
    """``report.pdf`` beside ``html``: (path or None, a one-line note for the log).

    When it cannot be made, an older ``report.pdf`` is removed so it never sits beside a newer
    page it does not match."""
    pdf = html.with_suffix(".pdf")
    try:
        return print_pdf(html, pdf), f"wrote {pdf.name}"
    except (FileNotFoundError, RuntimeError) as e:
        stale = pdf.is_file()
        pdf.unlink(missing_ok=True)
        return None, f"{pdf.name} skipped: {e}" + (" (removed the older one)" if stale else "")
