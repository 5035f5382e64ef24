"""A trained run's images: its fine model loaded, views rendered from it (a split's views
with their ground truths, the frames of a transforms file written as PNGs, depth maps, an
orbit). (The volume-rendering equations themselves are :mod:`.render`'s.)

The output folder carries a marker (``.hw4-nerf-render.json``) naming the run that wrote it,
so a folder holding another run's (or anyone else's) images is never overwritten.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from ..atomic import write_atomic
from ..config import NerfConfig, resolve_device
from ..data.blender import BACKGROUNDS, Cameras, load_split, read_transforms
from ..errors import UserError
from ..results import atomic_write_text, load_checkpoint
from .dvgo import VoxelModel
from .rays import orbit_poses, pixel_dirs, rays_of_pose
from .saved import MODEL_KEYS, build_voxel_model

MARKER = ".hw4-nerf-render.json"
IMAGE_EXT = (".png", ".jpg", ".jpeg")
TRAIN_SIZE = "train"  # render_split's max_size: the image size the run trained at
ORBIT_FRAMES, ORBIT_FPS = 40, 15  # an orbit video's


def load_run(run_dir: str | Path, device: str = "cpu") -> tuple[VoxelModel, dict]:
    """The finished fine model of a run and its metadata (orig size, near/far, background)."""
    run = Path(run_dir)
    path = run / "fine.pt"
    if not path.is_file():
        hint = (
            " (training is unfinished: resume it with `hw4 nerf train ... --resume`)"
            if (run / "checkpoint.pt").is_file()
            else ""
        )
        raise UserError(
            f"{run}: no trained model fine.pt in this run directory{hint}; "
            "train one with `hw4 nerf train --data DIR --out RUN`"
        )
    # often someone else's run (a grader's, a download), so nothing in the file is run; the
    # fix is a new run, since `hw4 nerf train` reuses a finished run folder as it is
    ck = load_checkpoint(
        path,
        keys=MODEL_KEYS,
        fix=(
            "train a new run (`hw4 nerf train --data DIR --out NEW_RUN`), or render with a run "
            "you trust"
        ),
    )
    meta = {k: ck[k] for k in ("orig_size", "train_size", "near", "far", "background") if k in ck}
    return build_voxel_model(ck["args"], ck["state"], device), meta


def near_far(meta: dict) -> tuple[float, float]:
    """The ray bounds a run was trained with (:func:`load_run`'s ``meta``); a ``fine.pt``
    without them has :class:`~hw4lib.config.NerfConfig`'s."""
    return meta.get("near", NerfConfig.near), meta.get("far", NerfConfig.far)


@torch.no_grad()
def render_image(
    model: VoxelModel,
    cams: Cameras,
    c2w: torch.Tensor,
    background: float,
    near: float,
    far: float,
    chunk: int = 8192,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One image from pose ``c2w`` with the intrinsics of ``cams``: ``rgb (H, W, 3)`` in [0, 1]
    and ``depth (H, W)``."""
    dev = model.lo.device
    H, W = cams.H, cams.W
    dirs = pixel_dirs(H, W, cams.fx, cams.fy, cams.cx, cams.cy, dev).reshape(-1, 3)
    o, d = rays_of_pose(c2w.to(dev), dirs)
    rgb, depth = [], []
    for s in range(0, d.shape[0], chunk):
        out = model.render(o[s : s + chunk], d[s : s + chunk], background, near, far)
        rgb.append(out["rgb"].clamp(0, 1))
        depth.append(out["depth"])
    return torch.cat(rgb).view(H, W, 3).cpu(), torch.cat(depth).view(H, W).cpu()


def render_poses(
    model: VoxelModel,
    meta: dict,
    cams: Cameras,
    poses: torch.Tensor,
    desc: str = "render",
    progress: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """:func:`render_image` from each of ``poses`` (N, 4, 4) in turn, as the run trained (its
    background and ray bounds, :func:`load_run`'s ``meta``): ``(rgb, depth)`` one at a time."""
    bg = BACKGROUNDS[meta.get("background", "white")]
    near, far = near_far(meta)
    for c2w in tqdm(poses, desc=desc, disable=not progress):
        yield render_image(model, cams, c2w, bg, near, far)


def _train_side(meta: dict) -> int | None:
    """The largest image side the run trained at (None: the images' own)."""
    return meta.get("train_size", [None])[0]


@torch.no_grad()
def render_split(
    run_dir: str | Path,
    data_dir: str | Path,
    split: str = "val",
    views: int | Sequence[str] | None = None,
    max_size: int | str | None = None,
    downscale: float = 1,
    device: str = "cpu",
    progress: bool = False,
) -> tuple[list[tuple[torch.Tensor, torch.Tensor]], list[torch.Tensor], list[str]]:
    """Views of a split rendered by a run, with their ground truths (on the run's background)
    and names: ``([(rgb, depth), ...], ground truths, names)``. ``views``: the first n (None:
    all) or these names; ``max_size``: the images' largest side (None: as on disk,
    :data:`TRAIN_SIZE`: as the run trained)."""
    model, meta = load_run(run_dir, resolve_device(device))
    size = _train_side(meta) if max_size == TRAIN_SIZE else max_size
    s = load_split(data_dir, split, downscale=downscale, max_size=size)
    cams, names = s.cameras, s.cameras.names
    if views is None or isinstance(views, int):
        idx = list(range(len(cams) if views is None else min(views, len(cams))))
    else:
        idx = [names.index(v) for v in views]
    gts = s.rgb(meta.get("background", "white"))
    shots = render_poses(model, meta, cams, cams.poses[idx], f"render {split}", progress)
    return list(shots), [gts[i] for i in idx], [names[i] for i in idx]


def orbit_frames(
    run_dir: str | Path, data_dir: str | Path, n: int = 8, device: str = "auto"
) -> list[torch.Tensor]:
    """RGB frames (H, W, 3) of an orbit around the scene at the training size."""
    model, meta = load_run(run_dir, resolve_device(device))
    cams = load_split(data_dir, "train", max_size=_train_side(meta)).cameras
    return [rgb for rgb, _ in render_poses(model, meta, cams, orbit_cameras(cams, n))]


def to_uint8(img: torch.Tensor) -> np.ndarray:
    return (img.clamp(0, 1).numpy() * 255 + 0.5).astype(np.uint8)


def depth_to_uint8(depth: torch.Tensor, near: float, far: float) -> np.ndarray:
    """Depth as a grey image: near = white, far = black."""
    x = ((far - depth) / (far - near)).clamp(0, 1)
    return (x.numpy() * 255 + 0.5).astype(np.uint8)


def check_out_dir(out: Path, run: Path) -> None:
    """Refuse an output folder holding images not written by renders of ``run``."""
    if not out.exists():
        return
    if not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory; choose another --out")
    images = [p for p in out.iterdir() if p.suffix.lower() in IMAGE_EXT]
    if not images:
        return
    marker = out / MARKER
    try:
        owner = json.loads(marker.read_text()).get("run")
    except (OSError, ValueError):
        owner = None
    if owner != str(run.resolve()):
        who = f"run {owner}" if owner else "something else (no render marker)"
        raise UserError(
            f"{out}: already holds {len(images)} images written by {who}; "
            "render into an empty or new folder"
        )


def _save_png(arr: np.ndarray, path: Path) -> None:
    write_atomic(path, lambda f: Image.fromarray(arr).save(f, format="PNG"))


def render_transforms(
    run_dir: str | Path,
    transforms: str | Path,
    out_dir: str | Path,
    size: int | None = None,
    depth: bool = False,
    video: bool = False,
    device: str = "auto",
    progress: bool = True,
) -> list[Path]:
    """Render every frame of ``transforms`` into ``out_dir/<basename of file_path>.png``.

    Image size: ``size`` (square) if given, else the transforms' ``w``/``h`` or the frames'
    images on disk, else the run's original training image size. ``depth`` adds
    ``<name>_depth.png`` under ``out_dir/depth``; ``video`` adds an orbit video.
    """
    run, out = Path(run_dir), Path(out_dir)
    model, meta = load_run(run, resolve_device(device))
    orig = meta.get("orig_size", [800, 800])
    cams = read_transforms(transforms, size=size or orig[0])
    if size:
        cams = cams.resized(int(size), int(size))
    check_out_dir(out, run)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(
        out / MARKER,
        json.dumps({"run": str(run.resolve()), "transforms": str(Path(transforms).resolve())}),
    )
    written = []
    shots = render_poses(model, meta, cams, cams.poses, "render", progress)
    for name, (rgb, dep) in zip(cams.names, shots):
        written.append(out / f"{name}.png")
        _save_png(to_uint8(rgb), written[-1])
        if depth:
            (out / "depth").mkdir(exist_ok=True)
            _save_png(depth_to_uint8(dep, *near_far(meta)), out / "depth" / f"{name}_depth.png")
    if video:
        written.append(render_orbit(model, meta, cams, out / "orbit", progress))
    return written


def orbit_cameras(cams: Cameras, n: int = 40) -> torch.Tensor:
    """Poses circling the scene at the cameras' mean distance and elevation."""
    pos = cams.poses[:, :3, 3]
    radius = float(pos.norm(dim=-1).mean())
    elev = float(torch.rad2deg(torch.asin((pos[:, 2] / pos.norm(dim=-1)).clamp(-1, 1))).mean())
    return orbit_poses(n, radius, elev)


def render_orbit(
    model: VoxelModel, meta: dict, cams: Cameras, stem: Path, progress: bool = True
) -> Path:
    """An orbit video ``stem.mp4`` (``stem.gif`` when no mp4 writer is available) of
    :data:`ORBIT_FRAMES` frames at :data:`ORBIT_FPS`."""
    poses, fps = orbit_cameras(cams, ORBIT_FRAMES), ORBIT_FPS
    frames = [to_uint8(rgb) for rgb, _ in render_poses(model, meta, cams, poses, "orbit", progress)]
    try:
        import imageio.v2 as imageio

        path = stem.with_suffix(".mp4")
        imageio.mimwrite(path, frames, fps=fps)
        return path
    except Exception:  # no imageio / ffmpeg: a gif via PIL
        path = stem.with_suffix(".gif")
        ims = [Image.fromarray(f) for f in frames]
        ims[0].save(path, save_all=True, append_images=ims[1:], duration=int(1000 / fps), loop=0)
        return path
