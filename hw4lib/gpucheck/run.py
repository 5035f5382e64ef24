"""``tools/gpu_check.sh``: one short run on a CUDA machine that says whether the project works
there and how fast, as one JSON file and a printed table.

Four sections (:mod:`hw4lib.gpucheck.sections`: ``env``, ``nerf``, ``render``, ``byol``), each
guarded: a failing one records its error and the others still run.

``--smoke`` runs the same code on the CPU at toy sizes in seconds.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .sections import (
    FULL,
    PASS_DB,
    SMOKE,
    Sizes,
    check_byol,
    check_env,
    check_nerf,
    check_render,
)

#: every section's numeric results (the test checks them finite and positive)
NUMERIC = {
    "env": ("device_memory_gib", "lookup_max_err"),
    "nerf": ("coarse_it_s", "fine_it_s", "projected_minutes", "fine_points_per_step"),
    "render": ("psnr_db",),
    "byol": ("fp32_img_s", "bf16_cl_img_s", "fp32_hours", "bf16_cl_hours"),
}
SECTIONS = tuple(NUMERIC)


CHECKS: dict[str, Callable[[str, Sizes, bool, dict], dict[str, Any]]] = {
    "env": check_env,
    "nerf": check_nerf,
    "render": check_render,
    "byol": check_byol,
}


# -- the run ---------------------------------------------------------------------------
def run_checks(dev: str, sizes: Sizes, smoke: bool) -> dict[str, Any]:
    """Every section in turn; one that raises records ``error`` and the rest go on."""
    result: dict[str, Any] = {"mode": "smoke" if smoke else "gpu", "device": dev}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hw4-gpu-check-") as work:
        ctx: dict[str, Any] = {"work": work}
        for name, fn in CHECKS.items():
            t0 = time.perf_counter()
            if dev == "cuda":
                torch.cuda.reset_peak_memory_stats()
            try:
                sec = {"ok": True, **fn(dev, sizes, smoke, ctx)}
            except Exception as e:  # recorded; the other sections still run
                traceback.print_exc()
                sec = {"ok": False, "error": f"{type(e).__name__}: {e}"}
            sec["seconds"] = round(time.perf_counter() - t0, 2)
            # what the section held on the GPU at most: headroom for the full profile's runs
            peak = torch.cuda.max_memory_allocated() / 2**30 if dev == "cuda" else None
            sec["peak_gpu_gib"] = None if peak is None else round(peak, 2)
            if name == "render" and sec["ok"] and not sec["passed"]:
                sec.update(ok=False, error=f"PSNR {sec['psnr_db']:.1f} dB < {PASS_DB} dB")
            result[name] = sec
            if name == "render":  # the fine model's grids need not sit on the GPU under BYOL
                ctx.pop("model", None)
            print(f"gpu_check: {name} {'done' if sec['ok'] else 'FAILED'} in {sec['seconds']} s")
    result["failed"] = [k for k in SECTIONS if not result[k]["ok"]]
    result["ok"] = not result["failed"]
    result["seconds"] = round(time.perf_counter() - t_all, 2)
    return result


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-2 else f"{v:,.2f}"
    return str(v)


#: the table's rows, by section: (key, label)
ROWS: dict[str, tuple[tuple[str, str], ...]] = {
    "env": (
        ("device_name", "device"),
        ("device_memory_gib", "memory (GiB)"),
        ("torch", "torch"),
        ("cuda", "CUDA (torch built with)"),
        ("cudnn", "cuDNN"),
        ("kernels_built", "C++ kernels built"),
        ("device_path", "DVGO path on the device"),
        ("lookup_max_err", "lookup vs grid_sample, max err"),
    ),
    "nerf": (
        ("fine_grid", "fine grid"),
        ("coarse_it_s", "coarse it/s"),
        ("fine_it_s", "fine it/s"),
        ("projected_minutes", "projected min, 5000 + 20000 steps"),
    ),
    "render": (("psnr_db", f"render PSNR device vs CPU (>= {PASS_DB:g} dB)"),),
    "byol": (
        ("fp32_img_s", "BYOL images/s fp32"),
        ("bf16_cl_img_s", "BYOL images/s bf16 + channels-last"),
        ("fp32_hours", "projected h, 1000 epochs, fp32"),
        ("bf16_cl_hours", "projected h, 1000 epochs, bf16"),
    ),
}


def table(result: dict[str, Any]) -> str:
    """The printed summary: one row a number, a section's error in place of its rows."""
    lines = [f"gpu_check ({result['mode']}, device {result['device']})"]
    for name in SECTIONS:
        sec = result[name]
        if not sec["ok"] and "error" in sec and not (name == "render" and "psnr_db" in sec):
            lines.append(f"  {name:7s} {'ERROR':44s} {sec['error']}")
            continue
        for key, label in ROWS[name]:
            if key in sec:
                lines.append(f"  {name:7s} {label:44s} {_fmt(sec[key])}")
    verdict = "ok" if result["ok"] else f"FAILED: {', '.join(result['failed'])}"
    lines.append(f"  {'':7s} {'total seconds':44s} {result['seconds']}   {verdict}")
    return "\n".join(lines)


def _clean(v: Any) -> Any:
    """``v`` with NaN and infinities as None: strict JSON (a reader sees the value missing)."""
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return None if isinstance(v, float) and not math.isfinite(v) else v


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="gpu_check.sh", description=__doc__.split("\n\n")[0].replace("``", "")
    )
    p.add_argument("--out", default="gpu_check.json", help="the JSON to write")
    p.add_argument("--smoke", action="store_true", help="toy sizes on the CPU, in seconds")
    a = p.parse_args(argv)
    if not a.smoke and not torch.cuda.is_available():
        print(
            "gpu_check: no CUDA device is visible (torch.cuda.is_available() is False); "
            "run it on a GPU machine, or add --smoke for the CPU dry run",
            file=sys.stderr,
        )
        return 2
    dev = "cpu" if a.smoke else "cuda"
    if a.smoke:  # toy sizes gain nothing from threads, and a busy machine's stall them
        torch.set_num_threads(1)
    result = run_checks(dev, SMOKE if a.smoke else FULL, a.smoke)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(_clean(result), indent=2, default=str, allow_nan=False) + "\n")
    print(table(result))
    print(f"gpu_check: wrote {out}")
    return 0 if result["ok"] else 1
