"""Per-image PSNR/SSIM/LPIPS of renders against ground truth, from memory or from folders."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.blender import BACKGROUNDS, over_background
from ..errors import UserError
from ..reference import PASS_MARKS
from ..results import atomic_write_text
from .image import psnr, ssim, to_float_image
from .lpips_vgg import load_lpips

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
METRICS = ("psnr", "ssim", "lpips")
#: NeRF-synthetic's test folders also hold per-view depth/normal maps: not views, ignored
_AUX_MAP = re.compile(r"_(depth|normal)_\d+\.png$", re.IGNORECASE)


def image_on_background(img: np.ndarray | torch.Tensor, background: str = "white") -> torch.Tensor:
    """An HxWx3 float image in [0, 1]; RGBA is composited over the background colour."""
    if background not in BACKGROUNDS:
        raise UserError(f"unknown background {background!r}: choose white or black")
    t = to_float_image(img)
    if t.ndim != 3 or t.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxWx3 or HxWx4 image, got shape {tuple(t.shape)}")
    return over_background(t, BACKGROUNDS[background])


def _mean(values: list[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return float(np.mean(values))


def evaluate_images(
    preds: Sequence[np.ndarray | torch.Tensor],
    gts: Sequence[np.ndarray | torch.Tensor],
    names: Sequence[str] | None = None,
    background: str = "white",
    device: str = "auto",
    with_lpips: bool = True,
) -> dict[str, Any]:
    """PSNR, SSIM and LPIPS(vgg) of each (pred, gt) pair and their means.

    Images are HxWx3 or HxWx4 (RGBA composited on ``background``), uint8 or float in [0, 1].
    Returns ``{"images": [{"name", "psnr", "ssim", "lpips"}...], "mean": {...}, "n": N,
    "lpips": "vgg-v0.1" | None}``; LPIPS values are ``None`` when the backbone weights are
    not cached (or ``with_lpips`` is False) -- never a random-backbone number.
    """
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions but {len(gts)} ground-truth images")
    names = list(names) if names is not None else [str(i) for i in range(len(preds))]
    metric = load_lpips(device) if with_lpips else None
    rows = []
    pairs = zip(names, preds, gts)
    for name, pred, gt in tqdm(
        pairs, total=len(names), desc="metrics", leave=False, disable=len(names) < 5
    ):
        p, g = image_on_background(pred, background), image_on_background(gt, background)
        if p.shape != g.shape:
            raise ValueError(
                f"{name}: prediction {tuple(p.shape)} vs ground truth {tuple(g.shape)}"
            )
        rows.append(
            {
                "name": name,
                "psnr": psnr(p, g),
                "ssim": ssim(p, g),
                "lpips": metric(p, g) if metric is not None else None,
            }
        )
    mean = {m: _mean([r[m] for r in rows]) for m in METRICS}
    return {
        "images": rows,
        "mean": mean,
        "n": len(rows),
        "lpips": "vgg-v0.1" if metric is not None else None,
    }


def _natural_key(name: str) -> list:
    """``r_2.png`` before ``r_10.png``."""
    return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", name)]


def _list_images(folder: Path, role: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise UserError(f"{role} folder {folder} does not exist: pass a folder of PNG images")
    files = {
        p.name: p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES and not _AUX_MAP.search(p.name)
    }
    if not files:
        raise UserError(
            f"{role} folder {folder} holds no .png/.jpg images: pass the folder that contains them"
        )
    return files


def read_image(path: str | Path) -> np.ndarray:
    """An image file as a uint8 HxWx3 or HxWx4 array (grey and palette become RGB)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.mode not in ("RGB", "RGBA"):
                im = im.convert(
                    "RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB"
                )
            return np.asarray(im).copy()
    except OSError as e:
        raise UserError(f"cannot read image {path} ({e}): replace it with a valid PNG") from None


def evaluate_folders(
    pred_dir: str | Path,
    gt_dir: str | Path,
    background: str = "white",
    json_out: str | Path | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Metrics of every image in ``pred_dir`` against the same-named one in ``gt_dir``.

    Both folders must hold the same file names (``r_0.png`` ...) at the same sizes, else a
    one-line :class:`UserError` naming both folders and the first mismatch (NeRF-synthetic's
    ``r_0_depth_0000.png``/``r_0_normal_0000.png`` maps and subfolders are ignored).
    Ground-truth RGBA is composited on ``background``. Writes ``json_out`` atomically.
    """
    pred_dir, gt_dir = Path(pred_dir), Path(gt_dir)
    if background not in BACKGROUNDS:
        raise UserError(f"unknown background {background!r}: choose white or black")
    preds, gts = _list_images(pred_dir, "prediction"), _list_images(gt_dir, "ground-truth")
    only_pred = sorted(set(preds) - set(gts), key=_natural_key)
    only_gt = sorted(set(gts) - set(preds), key=_natural_key)
    if only_pred or only_gt:
        first = (
            f"{only_pred[0]} is in {pred_dir} but not in {gt_dir}"
            if only_pred
            else f"{only_gt[0]} is in {gt_dir} but not in {pred_dir}"
        )
        raise UserError(
            f"prediction folder {pred_dir} and ground-truth folder {gt_dir} hold "
            f"different images ({len(only_pred)} only in predictions, {len(only_gt)} "
            f"only in ground truth; first: {first}): render exactly the "
            "ground-truth views"
        )
    names = sorted(preds, key=_natural_key)
    pred_imgs, gt_imgs = [], []
    for name in names:
        p, g = read_image(preds[name]), read_image(gts[name])
        if p.shape[:2] != g.shape[:2]:
            raise UserError(
                f"{name} is {p.shape[1]}x{p.shape[0]} in {pred_dir} but "
                f"{g.shape[1]}x{g.shape[0]} in {gt_dir}: render at the ground "
                "truth's size"
            )
        pred_imgs.append(p)
        gt_imgs.append(g)
    result = evaluate_images(pred_imgs, gt_imgs, names=names, background=background, device=device)
    # absolute: the JSON is read later from anywhere (tools/record_nerf.py)
    result.update(
        pred_dir=str(pred_dir.resolve()), gt_dir=str(gt_dir.resolve()), background=background
    )
    if json_out is not None:
        atomic_write_text(json_out, json.dumps(result, indent=2) + "\n")
    return result


def format_summary(result: dict[str, Any]) -> str:
    """A short human-readable table: one line per image and the mean."""

    def fmt(v: float | None, digits: int) -> str:
        if v is None:
            return "missing"
        return "inf" if math.isinf(v) else f"{v:.{digits}f}"

    lines = [f"{'image':<24}{'PSNR':>9}{'SSIM':>9}{'LPIPS':>9}"]
    for r in result["images"]:
        lines.append(
            f"{r['name']:<24}{fmt(r['psnr'], 2):>9}{fmt(r['ssim'], 4):>9}{fmt(r['lpips'], 4):>9}"
        )
    m = result["mean"]
    lines.append(
        f"{'mean (' + str(result['n']) + ')':<24}{fmt(m['psnr'], 2):>9}"
        f"{fmt(m['ssim'], 4):>9}{fmt(m['lpips'], 4):>9}"
    )
    if result.get("lpips") is None:
        lines.append("LPIPS missing: run `hw4 weights lpips` to obtain the VGG16 backbone")
    lines.append(pass_line(m))
    return "\n".join(lines)


def pass_line(mean: dict[str, float | None]) -> str:
    """The mean PSNR and SSIM against the course grader's pass marks (LPIPS is not graded)."""
    verdicts = []
    for k, mark in PASS_MARKS.items():
        v = mean.get(k)
        verdict = "missing" if v is None else ("pass" if v >= mark else "fail")
        verdicts.append(f"{k.upper()} {verdict} (>= {mark:g})")
    return "course pass marks on val: " + ", ".join(verdicts)
