"""The report's own numbers (the spec we compare against), typed once here.

These are the published values of the report and papers, shown beside ours; they are never
used as our results. The A-E accuracies live with the SSL code, ``hw4lib.ssl.jobs.REPORT_ACC``,
whose ``hw4 ssl table`` prints them too.
"""
from __future__ import annotations

#: Report, Problem 1.3: hotdog val (50 views, 800x800). (stepsize, fine voxels) -> metrics.
DVGO_TABLE = [
    {"stepsize": 0.5, "fine_voxels": "180^3", "psnr": 35.180, "ssim": 0.974, "lpips": 0.041},
    {"stepsize": 2.0, "fine_voxels": "180^3", "psnr": 32.386, "ssim": 0.956, "lpips": 0.072},
    {"stepsize": 4.0, "fine_voxels": "180^3", "psnr": 28.413, "ssim": 0.922, "lpips": 0.112},
    {"stepsize": 0.5, "fine_voxels": "120^3", "psnr": 34.870, "ssim": 0.972, "lpips": 0.046},
    {"stepsize": 0.5, "fine_voxels": "80^3", "psnr": 34.059, "ssim": 0.968, "lpips": 0.055},
]

#: Published hotdog results (PSNR, SSIM, LPIPS) for context.
DVGO_PUBLISHED = {
    "DVGO (paper, 15.5 min on a 2080Ti)": (36.74, 0.980, 0.034),
    "NeRF (1-2 days)": (36.18, 0.974, 0.121),
}

#: Report, Problem 1.2: DVGO training settings (coarse, fine).
DVGO_SETTINGS = {
    "iterations": (5000, 20000),
    "number of voxels": (1024000, 4096000),
    "stepsize": (0.5, 0.5),
    "alpha_init": (1e-6, 1e-2),
    "fast_color_threshold": (1e-7, 1e-4),
}
