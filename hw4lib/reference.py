"""The report's own numbers (the spec we compare against), typed once here.

Shown beside ours in tables and figures; never used as our results. At the top of the library
so that the report layer, the notebooks and ``hw4 ssl table`` read the same values.
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

#: Report, Problem 2: Office-Home val accuracy of settings A-E (it divides by 407 for 406 val
#: images; kept as printed).
AE_ACC = {"A": 0.162, "B": 0.229, "C": 0.585, "D": 0.201, "E": 0.445}
