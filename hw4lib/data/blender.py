"""Blender synthetic scenes (the course's ``hotdog`` layout) -- cameras and images.

``transforms_<split>.json`` holds ``camera_angle_x`` and ``frames[].{file_path,
transform_matrix}`` (camera-to-world, OpenGL axes: the camera looks down -z, y is up).
Optional per-file intrinsics ``fl_x, fl_y, cx, cy, w, h`` (instant-ngp / nerfstudio) win over
``camera_angle_x``. Images stay uint8 until :meth:`BlenderSplit.rgb` composites them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import UserError

SPLITS = ("train", "val", "test")
BACKGROUNDS = {"white": 1.0, "black": 0.0}


@dataclass
class Cameras:
    """Pinhole cameras of one transforms file. ``poses`` is (N, 4, 4) camera-to-world."""

    poses: torch.Tensor
    H: int
    W: int
    fx: float
    fy: float
    cx: float
    cy: float
    file_paths: list[str]
    source: Path

    @property
    def names(self) -> list[str]:
        """Basename of each ``file_path`` without extension (the grader's output names)."""
        return [
            Path(p).stem if Path(p).suffix.lower() in (".png", ".jpg", ".jpeg") else Path(p).name
            for p in self.file_paths
        ]

    def __len__(self) -> int:
        return len(self.file_paths)

    def resized(self, H: int, W: int) -> "Cameras":
        """The same cameras rendering (H, W) images (intrinsics scaled)."""
        sx, sy = W / self.W, H / self.H
        return replace(
            self, H=H, W=W, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy
        )


def _fail(path: Path, what: str) -> UserError:
    return UserError(f"{path}: {what}")


def read_transforms(path: str | Path, size: int | None = None) -> Cameras:
    """Parse and validate a ``transforms_*.json``.

    The image size comes from ``w``/``h`` in the file, else from the first frame's image on
    disk, else ``size``; every problem raises :class:`UserError` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "transforms file not found (expected e.g. <scene>/transforms_val.json)")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise _fail(path, f"not valid JSON ({e}); regenerate or fix the file") from None
    if not isinstance(meta, dict):
        raise _fail(path, "top level must be a JSON object with 'frames'")
    frames = meta.get("frames")
    if not isinstance(frames, list):
        raise _fail(path, "missing key 'frames' (a list of {file_path, transform_matrix})")
    if not frames:
        raise _fail(path, "'frames' is empty: there are no cameras to load")
    poses, paths = [], []
    for i, fr in enumerate(frames):
        if not isinstance(fr, dict) or "transform_matrix" not in fr or "file_path" not in fr:
            raise _fail(path, f"frame {i} needs keys 'file_path' and 'transform_matrix'")
        try:
            m = np.asarray(fr["transform_matrix"], dtype=np.float64)
        except (TypeError, ValueError):
            raise _fail(path, f"frame {i}: transform_matrix is not a numeric 4x4 matrix") from None
        if m.shape != (4, 4):
            raise _fail(path, f"frame {i}: transform_matrix has shape {m.shape}, expected 4x4")
        if not np.isfinite(m).all():
            raise _fail(path, f"frame {i}: transform_matrix holds NaN or infinite values")
        poses.append(m)
        paths.append(str(fr["file_path"]))

    try:
        return _cameras(path, meta, poses, paths, size)
    except (TypeError, ValueError) as e:  # e.g. "camera_angle_x": "wide", "w": null
        raise _fail(
            path,
            f"intrinsics are not numbers ({e}); fix camera_angle_x / fl_x / fl_y / cx / cy / w / h",
        ) from None


def _cameras(path: Path, meta: dict, poses: list, paths: list[str], size: int | None) -> Cameras:
    H = W = None
    if "w" in meta and "h" in meta:
        W, H = int(meta["w"]), int(meta["h"])
    else:
        first = resolve_image(path.parent, paths[0], must_exist=False)
        if first is not None:
            try:
                with Image.open(first) as im:
                    W, H = im.size
            except Exception as e:
                raise _fail(
                    first, f"cannot read image ({type(e).__name__}: {e}); replace or regenerate it"
                ) from None
        elif size is not None:
            W = H = int(size)
        else:
            raise _fail(
                path,
                "no 'w'/'h' keys and the first frame's image is missing: "
                "pass the output size (--size)",
            )
    if W <= 0 or H <= 0:
        raise _fail(path, f"image size {W}x{H} is not positive")
    if "fl_x" in meta:
        fx = float(meta["fl_x"])
        fy = float(meta.get("fl_y", fx))
    elif "camera_angle_x" in meta:
        angle = float(meta["camera_angle_x"])
        if not 0 < angle < math.pi:
            raise _fail(
                path,
                f"camera_angle_x {angle} must be in (0, pi) radians "
                "(the course's hotdog has 0.6911)",
            )
        fx = fy = 0.5 * W / math.tan(0.5 * angle)
    else:
        raise _fail(path, "missing key 'camera_angle_x' (or 'fl_x'): the focal length is unknown")
    if not (math.isfinite(fx) and math.isfinite(fy) and fx > 0 and fy > 0):
        raise _fail(
            path,
            f"focal length ({fx}, {fy}) must be finite and positive; check "
            "camera_angle_x (radians, in (0, pi)) or fl_x / fl_y",
        )
    cx = float(meta.get("cx", W / 2))
    cy = float(meta.get("cy", H / 2))
    return Cameras(
        torch.tensor(np.stack(poses), dtype=torch.float32), H, W, fx, fy, cx, cy, paths, path
    )


IMAGE_EXTS = (".png", ".jpg", ".jpeg")


def resolve_image(root: Path, file_path: str, must_exist: bool = True) -> Path | None:
    """The image of ``file_path`` (with or without extension) under ``root``."""
    p = (root / file_path).resolve()
    if p.suffix.lower() in IMAGE_EXTS:
        candidates = [p]
    else:  # no extension, or a dot inside the name ("r_0.001"): try appending one
        candidates = [p.with_name(p.name + ext) for ext in IMAGE_EXTS] + [p]
    for c in candidates:
        if c.is_file():
            return c
    if must_exist:
        raise UserError(
            f"{candidates[0]}: frame image not found (file_path {file_path!r} "
            f"in {root}); check the scene folder"
        )
    return None


@dataclass
class BlenderSplit:
    """Cameras plus their images, uint8 (N, H, W, C) with C = 3 (RGB) or 4 (RGBA)."""

    cameras: Cameras
    images: torch.Tensor

    def rgb(self, background: str | float = "white") -> torch.Tensor:
        """Float (N, H, W, 3) in [0, 1], RGBA composited on the background: rgb*a + bg*(1-a)."""
        if isinstance(background, str):
            if background not in BACKGROUNDS:
                raise UserError(
                    f"background {background!r}: choose one of "
                    f"{', '.join(BACKGROUNDS)} (or a number in [0, 1])"
                )
            bg = BACKGROUNDS[background]
        else:
            bg = float(background)
        return over_background(self.images, bg)


def over_background(images: torch.Tensor, bg: float) -> torch.Tensor:
    """(..., 3|4) uint8 or float in [0, 1] -> float (..., 3) on a constant background."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images
    if x.shape[-1] == 4:
        return x[..., :3] * x[..., 3:] + bg * (1.0 - x[..., 3:])
    return x[..., :3]


def target_size(
    H: int, W: int, downscale: float = 1, max_size: int | None = None
) -> tuple[int, int]:
    """Training image size: divide by ``downscale``, then cap the long side at ``max_size``."""
    if not downscale > 0:
        raise UserError(f"downscale {downscale!r}: must be a positive factor (1 = full size)")
    if max_size is not None and max_size < 1:
        raise UserError(f"max_size {max_size!r}: must be at least 1 pixel (or None)")
    h, w = H / downscale, W / downscale
    if max_size is not None and max(h, w) > max_size:
        s = max_size / max(h, w)
        h, w = h * s, w * s
    return max(1, round(h)), max(1, round(w))


def load_split(
    root: str | Path, split: str = "train", downscale: float = 1, max_size: int | None = None
) -> BlenderSplit:
    """Load ``root/transforms_<split>.json`` and its images (resized with area averaging)."""
    root = Path(root)
    if not root.is_dir():
        raise UserError(
            f"{root}: scene directory not found (expected a folder with "
            f"transforms_{split}.json); generate one with `hw4 data scene`"
        )
    cams = read_transforms(root / f"transforms_{split}.json")
    H, W = target_size(cams.H, cams.W, downscale, max_size)
    imgs = []
    for fp in cams.file_paths:
        f = resolve_image(root, fp)
        try:
            with Image.open(f) as im:
                im.load()
                if im.size != (cams.W, cams.H):
                    raise UserError(
                        f"{f}: image is {im.size[0]}x{im.size[1]} but the scene's "
                        f"images are {cams.W}x{cams.H}; all frames must match"
                    )
                rgba = im.mode in ("RGBA", "LA", "PA") or (
                    im.mode == "P" and "transparency" in im.info
                )
                im = im.convert("RGBA") if rgba else im.convert("RGB")
                if (H, W) != (cams.H, cams.W):
                    # average premultiplied colour ("RGBa"): the black rgb under alpha 0 must
                    # not bleed into the edges of the object
                    im = (
                        im.convert("RGBa").resize((W, H), Image.BOX).convert("RGBA")
                        if rgba
                        else im.resize((W, H), Image.BOX)
                    )
                arr = np.asarray(im)
        except UserError:
            raise
        except Exception as e:  # PIL raises many types for a broken file
            raise UserError(f"{f}: cannot read image ({e}); replace or regenerate it") from None
        imgs.append(arr)
    channels = {a.shape[-1] for a in imgs}
    if len(channels) > 1:  # mixed RGB / RGBA: promote all to RGBA
        imgs = [
            a
            if a.shape[-1] == 4
            else np.concatenate([a, np.full(a.shape[:2] + (1,), 255, np.uint8)], -1)
            for a in imgs
        ]
    return BlenderSplit(cams.resized(H, W), torch.from_numpy(np.stack(imgs)))
