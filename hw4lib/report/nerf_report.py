"""Problem 1 as report tables and sentences, built from the DVGO sweep results."""

from __future__ import annotations

import pandas as pd

from ..reference import DVGO_TABLE


def sweep_table(df: pd.DataFrame) -> pd.DataFrame:
    """Ours beside the report's, row by row in the report's order of settings."""
    out = pd.DataFrame(
        {
            "stepsize": df["stepsize"].astype(float),
            "fine voxels (ours)": [f"{s}^3" for s in df["fine_side"]],
            "PSNR": df["psnr"].astype(float),
            "SSIM": df["ssim"].astype(float),
            "LPIPS": pd.to_numeric(df["lpips"], errors="coerce").astype(float),
        }
    )
    if len(out) == len(DVGO_TABLE):
        # the table's label, and what the report's configs ran where the two differ
        out["fine voxels (report)"] = [
            r["fine_voxels"]
            if r["as_run"] == r["fine_voxels"]
            else f"{r['fine_voxels']} (ran {r['as_run']})"
            for r in DVGO_TABLE
        ]
        out["PSNR (report)"] = [r["psnr"] for r in DVGO_TABLE]
        out["SSIM (report)"] = [r["ssim"] for r in DVGO_TABLE]
        out["LPIPS (report)"] = [r["lpips"] for r in DVGO_TABLE]
    return out


def findings(df: pd.DataFrame) -> list[str]:
    """The report's trends (finer steps and more voxels are better), checked on ``df``."""
    lines = []
    big = df["fine_voxels"].max()
    by_step = df[df["fine_voxels"] == big].sort_values("stepsize")
    by_vox = df[df["stepsize"] == df["stepsize"].min()].sort_values("fine_voxels")

    def trend(name: str, col: pd.Series, decreasing: bool) -> str:
        vals = col.astype(float).tolist()
        pairs = list(zip(vals, vals[1:]))
        ok = all((a >= b) if decreasing else (a <= b) for a, b in pairs)
        arrow = " > " if decreasing else " < "
        return (
            f"{name}: {'holds' if ok else 'does NOT hold'} ({arrow.join(f'{v:.3f}' for v in vals)})"
        )

    lines.append(trend("PSNR falls as the step size grows (largest grid)", by_step["psnr"], True))
    lines.append(trend("SSIM falls as the step size grows", by_step["ssim"], True))
    if by_step["lpips"].notna().all():
        lines.append(trend("LPIPS rises as the step size grows", by_step["lpips"], False))
    lines.append(trend("PSNR rises with the number of voxels (step 0.5)", by_vox["psnr"], False))
    lines.append(trend("SSIM rises with the number of voxels", by_vox["ssim"], False))
    return lines
