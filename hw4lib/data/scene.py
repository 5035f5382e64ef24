"""Procedural 3D scenes written in the Blender synthetic layout (the course's ``hotdog`` folder).

``generate_scene`` renders analytic shapes with :mod:`hw4lib.data.raytrace` (its own ray
tracer, unrelated to the DVGO code) and writes::

    out/transforms_train.json   {"camera_angle_x": 0.6911..., "frames": [
    out/train/r_0.png ...          {"file_path": "./train/r_0",
                                    "transform_matrix": 4x4 camera-to-world (OpenGL axes)}, ...]}
    out/transforms_val.json, out/val/r_*.png   (and test when n_test > 0)

RGBA PNGs with straight (non-premultiplied) alpha: 0 on the background, fractional on
anti-aliased edges (``supersample``^2 rays a pixel), as Blender writes them. Cameras sit on the
upper hemisphere (z up) at radius 4.0311 looking at the origin; each split draws its own
cameras, so val views differ from train views. Pixel (i, j) covers [i, i+1) x [j, j+1): its
centre ray passes through (i + 0.5, j + 0.5), as in Blender's renders.

Scenes: ``hotdog`` (plate, two buns, sausages, ketchup and mustard zig-zags, within
[-1.3, 1.3]^2 x [-0.3, 0.5]) and ``ficus`` (a potted plant: a trunk and thin branches ~1 px
wide at 100 px, leaves, a finely striped pot on a checkered base), where grid resolution and
step size visibly matter.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any, Callable

import numpy as np
from PIL import Image

from ..atomic import write_atomic
from ..errors import UserError
from .outdir import make_tmp, replace_dir
from .raytrace import Capsule, Cylinder, Ellipsoid, Light, Material, Scene, shade

#: the course hotdog's horizontal field of view and camera distance
CAMERA_ANGLE_X = 0.6911112070083618
RADIUS = 4.0311
SPLITS = ("train", "val", "test")
#: a file marking a folder as this generator's output (so it may be replaced)
MARKER = ".hw4-scene.json"
#: rays traced per batch (bounds memory: ~1 KB a ray in float64 temporaries)
_CHUNK = 1 << 16


# --------------------------------------------------------------------------- scenes
def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _lights() -> list[Light]:
    # key light from above-front with shadows, a cooler fill without: static, so every view
    # sees the same radiance field (what NeRF assumes); specular makes it view-dependent
    return [
        Light((0.45, -0.35, 0.82), (0.85, 0.82, 0.78), shadows=True),
        Light((-0.6, 0.5, 0.45), (0.25, 0.28, 0.33), shadows=False),
    ]


def hotdog_scene() -> Scene:
    """A plate with two hot dogs (bun halves, sausage, sauce zig-zag), like the course scene."""
    plate_r = (1.3, 1.05, 0.07)

    def plate_albedo(p: np.ndarray, n: np.ndarray) -> np.ndarray:
        # white ceramic with a blue ring near the rim (fine detail for the grid to resolve)
        rr = np.hypot(p[:, 0] / plate_r[0], p[:, 1] / plate_r[1])
        ring = ((rr > 0.80) & (rr < 0.85)) | ((rr > 0.9) & (rr < 0.92))
        return np.where(ring[:, None], (0.25, 0.40, 0.80), (0.93, 0.93, 0.90))

    def bun_albedo(p: np.ndarray, n: np.ndarray) -> np.ndarray:
        # baked crust: darker where the surface faces up
        w = np.clip(n[:, 2], 0.0, 1.0)[:, None] ** 1.5
        light, dark = np.array((0.95, 0.76, 0.45)), np.array((0.74, 0.43, 0.16))
        return light * (1 - w) + dark * w

    shapes: list = [Ellipsoid((0.0, 0.0, -0.23), plate_r, Material(plate_albedo, 0.6, 80.0))]
    sausage = Material((0.62, 0.20, 0.11), 0.5, 40.0)
    sauces = [Material((0.97, 0.80, 0.10), 0.7, 60.0), Material((0.78, 0.07, 0.05), 0.7, 60.0)]
    for i, (y0, yaw) in enumerate(((-0.42, 0.10), (0.42, -0.06))):
        R = _rot_z(yaw)

        def at(x: float, y: float, z: float) -> np.ndarray:
            return R @ np.array((x, y + y0, z))

        for side in (-1, 1):  # the two halves of the split bun
            shapes.append(
                Ellipsoid(
                    at(0, side * 0.14, 0.0), (0.95, 0.17, 0.17), Material(bun_albedo, 0.08, 12.0), R
                )
            )
        shapes.append(Capsule(at(-1.07, 0, 0.10), at(1.07, 0, 0.10), 0.12, sausage))
        xs = np.linspace(-0.85, 0.85, 10)
        pts = [
            at(x, (0.07 if k % 2 else -0.07), 0.10 + math.sqrt(0.12**2 - 0.07**2) + 0.012)
            for k, x in enumerate(xs)
        ]
        shapes += [Capsule(a, b, 0.024, sauces[i]) for a, b in zip(pts[:-1], pts[1:])]
    return Scene(shapes, _lights(), ambient=0.28)


def ficus_scene() -> Scene:
    """A potted plant: trunk, thin branches, leaves; a striped pot on a checkered base."""

    def base_albedo(p: np.ndarray, n: np.ndarray) -> np.ndarray:
        check = (np.floor(p[:, 0] / 0.125) + np.floor(p[:, 1] / 0.125)) % 2 == 0
        return np.where(check[:, None], (0.92, 0.88, 0.78), (0.12, 0.35, 0.42))

    def pot_albedo(p: np.ndarray, n: np.ndarray) -> np.ndarray:
        stripe = np.floor(p[:, 2] / 0.05) % 2 == 0
        col = np.where(stripe[:, None], (0.80, 0.42, 0.24), (0.55, 0.22, 0.12))
        soil = (p[:, 2] > -0.551) & (n[:, 2] > 0.9)
        return np.where(soil[:, None], (0.22, 0.15, 0.10), col)

    shapes: list = [
        Cylinder((0, 0, -0.92), (0, 0, -0.86), 0.8, Material(base_albedo, 0.3, 50.0)),
        Cylinder((0, 0, -0.86), (0, 0, -0.55), 0.3, Material(pot_albedo, 0.25, 30.0)),
    ]
    bark = Material((0.38, 0.26, 0.16), 0.15, 20.0)
    rng = np.random.default_rng(7)  # fixed geometry: the seed only moves the cameras
    greens = [(0.18, 0.55, 0.16), (0.30, 0.65, 0.20), (0.12, 0.42, 0.18)]

    def branch(
        start: np.ndarray, direction: np.ndarray, length: float, radius: float, depth: int
    ) -> None:
        end = start + direction * length
        shapes.append(Capsule(start, end, radius, bark))
        if depth == 0:
            for _ in range(3):  # leaves around the tip, oriented along random directions
                ld = direction + rng.normal(0, 0.8, 3)
                ld /= np.linalg.norm(ld)
                side = np.cross(ld, rng.normal(0, 1, 3))
                side /= np.linalg.norm(side)
                R = np.stack([ld, side, np.cross(ld, side)], axis=1)
                c = end + ld * 0.08
                shapes.append(
                    Ellipsoid(
                        c,
                        (0.10, 0.05, 0.008),
                        Material(greens[int(rng.integers(3))], 0.45, 40.0),
                        R,
                    )
                )
            return
        for k in range(3):
            az = 2 * math.pi * (k / 3 + rng.uniform(-0.1, 0.1))
            tilt = rng.uniform(0.5, 0.9)
            nd = direction * math.cos(tilt) + np.array(
                (math.cos(az), math.sin(az), 0.0)
            ) * math.sin(tilt)
            nd /= np.linalg.norm(nd)
            branch(end, nd, length * rng.uniform(0.6, 0.75), radius * 0.62, depth - 1)

    branch(np.array((0.0, 0.0, -0.6)), np.array((0.05, 0.02, 1.0)) / 1.0015, 0.75, 0.035, 2)
    return Scene(shapes, _lights(), ambient=0.3)


SCENES: dict[str, Callable[[], Scene]] = {"hotdog": hotdog_scene, "ficus": ficus_scene}


# --------------------------------------------------------------------------- cameras
def look_at(
    position: np.ndarray,
    target: np.ndarray = np.zeros(3),
    up: np.ndarray = np.array((0.0, 0.0, 1.0)),
) -> np.ndarray:
    """4x4 camera-to-world in OpenGL axes (x right, y up, camera looks down -z)."""
    z = position - target
    z = z / np.linalg.norm(z)
    x = np.cross(up, z)
    x = x / np.linalg.norm(x)
    y = np.cross(z, x)
    m = np.eye(4)
    m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = x, y, z, position
    return m


def sample_cameras(
    n: int,
    rng: np.random.Generator,
    radius: float = RADIUS,
    min_elev_deg: float = 5.0,
    max_elev_deg: float = 80.0,
) -> np.ndarray:
    """n camera-to-world matrices on the upper hemisphere, uniform in area over an elevation band.

    One (azimuth, height) pair is drawn per camera in turn, so the first k cameras of n are
    the k cameras of a smaller set (a preview of 4 views shows the report's first 4).
    """
    u = rng.uniform(size=(n, 2))
    az = 2 * math.pi * u[:, 0]
    lo, hi = math.sin(math.radians(min_elev_deg)), math.sin(math.radians(max_elev_deg))
    z = lo + (hi - lo) * u[:, 1]
    rxy = np.sqrt(1 - z**2)
    pos = radius * np.stack([rxy * np.cos(az), rxy * np.sin(az), z], axis=1)
    return np.stack([look_at(p) for p in pos])


def camera_rays(c2w: np.ndarray, size: int, supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """World rays (origins, unit dirs), shape (size, size, s*s, 3), for a square image."""
    focal = 0.5 * size / math.tan(0.5 * CAMERA_ANGLE_X)
    s = supersample
    sub = (np.arange(s) + 0.5) / s  # sub-pixel sample positions within [0, 1)
    u = (np.arange(size)[:, None] + sub[None, :]).reshape(-1)  # size*s positions along an axis
    i, j = np.meshgrid(u, u, indexing="xy")  # i: column (x), j: row (y)
    dirs = np.stack([(i - size / 2) / focal, -(j - size / 2) / focal, -np.ones_like(i)], -1)
    dirs = dirs @ c2w[:3, :3].T
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    # (size*s, size*s) -> (size, s, size, s) -> (size, size, s*s)
    dirs = dirs.reshape(size, s, size, s, 3).transpose(0, 2, 1, 3, 4).reshape(size, size, s * s, 3)
    return np.broadcast_to(c2w[:3, 3], dirs.shape), dirs


def render_view(scene: Scene, c2w: np.ndarray, size: int, supersample: int = 2) -> np.ndarray:
    """One RGBA uint8 (size, size, 4) image: straight colour, alpha = covered fraction."""
    o, d = camera_rays(c2w, size, supersample)
    o, d = o.reshape(-1, 3), d.reshape(-1, 3)
    rgb = np.empty((len(d), 3))
    hit = np.empty(len(d), dtype=bool)
    for a in range(0, len(d), _CHUNK):
        rgb[a : a + _CHUNK], hit[a : a + _CHUNK] = shade(
            scene, np.ascontiguousarray(o[a : a + _CHUNK]), d[a : a + _CHUNK]
        )
    ss = supersample * supersample
    rgb = rgb.reshape(size, size, ss, 3)
    hit = hit.reshape(size, size, ss)
    n_hit = hit.sum(-1)
    alpha = n_hit / ss
    colour = (rgb * hit[..., None]).sum(-2) / np.maximum(n_hit, 1)[..., None]
    out = np.concatenate([colour, alpha[..., None]], -1)
    return np.round(np.clip(out, 0, 1) * 255).astype(np.uint8)


# --------------------------------------------------------------------------- writing
def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; choose another --out")
    if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
        raise UserError(
            f"{out}: folder is not empty and was not written by `hw4 data scene`; "
            "choose an empty or new --out folder"
        )


#: the arguments of :func:`generate_scene` its marker records: what makes the files
RECORDED = ("scene", "size", "n_train", "n_val", "n_test", "seed", "supersample")
#: the least each integer setting of :func:`generate_scene` may be
_LEAST = {"size": 4, "n_train": 1, "n_val": 1, "n_test": 0, "supersample": 1}


def _check_settings(settings: dict[str, Any]) -> None:
    """Refuse an unknown scene and an integer setting below :data:`_LEAST`, in one line."""
    if settings["scene"] not in SCENES:
        raise UserError(f"unknown scene {settings['scene']!r}: choose one of {', '.join(SCENES)}")
    for name, lo in _LEAST.items():
        v = settings[name]
        if int(v) != v or v < lo:
            raise UserError(f"{name}={v!r}: must be an integer >= {lo}")


def _write_views(
    tmp: Path,
    world: Scene,
    cameras: dict[str, np.ndarray],
    size: int,
    supersample: int,
    desc: str,
    progress: bool,
) -> None:
    """Render each split's cameras into ``tmp/<split>/r_<i>.png`` and write its transforms."""
    from tqdm.auto import tqdm  # ~0.08 s to import: only a generating run pays it

    jobs = [(split, i, m) for split, ms in cameras.items() for i, m in enumerate(ms)]
    frames: dict[str, list] = {split: [] for split in cameras}
    for split in frames:
        (tmp / split).mkdir()
    for split, i, c2w in tqdm(jobs, desc=desc, disable=not progress):
        img = render_view(world, c2w, size, supersample)
        Image.fromarray(img, "RGBA").save(tmp / split / f"r_{i}.png")
        frames[split].append({"file_path": f"./{split}/r_{i}", "transform_matrix": c2w.tolist()})
    for split, fr in frames.items():
        meta = {"camera_angle_x": CAMERA_ANGLE_X, "frames": fr}
        (tmp / f"transforms_{split}.json").write_text(json.dumps(meta, indent=2))


def generate_scene(
    out: str | Path,
    scene: str = "hotdog",
    size: int = 100,
    n_train: int = 50,
    n_val: int = 50,
    n_test: int = 0,
    seed: int = 0,
    supersample: int = 2,
    progress: bool = True,
    owned: bool = False,
) -> Path:
    """Render ``scene`` into ``out`` in the Blender synthetic layout and return ``out``.

    Written into a temporary sibling folder and renamed at the end: an interrupted run leaves
    no half scene, and a non-empty ``out`` that is not a previous scene output is refused
    (unless ``owned``: see :func:`replace_dir`). The marker records the settings.
    """
    out = Path(out)
    settings = dict(zip(RECORDED, (scene, size, n_train, n_val, n_test, seed, supersample)))
    _check_settings(settings)
    if not owned:
        _check_out(out)
    world = SCENES[scene]()
    counts = {"train": n_train, "val": n_val, "test": n_test}
    cameras = {  # each split its own stream: val cameras != train
        split: sample_cameras(counts[split], np.random.default_rng([seed, k]))
        for k, split in enumerate(SPLITS)
        if counts[split]
    }
    tmp = make_tmp(out)
    try:
        _write_views(tmp, world, cameras, size, supersample, f"render {scene} {size}px", progress)
        marker = {"generator": "hw4lib.data.scene", **settings}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2))
        replace_dir(tmp, out, MARKER, owned)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def preview(scene_dir: str | Path, out_png: str | Path, n: int = 4) -> Path:
    """Save a row of the first ``n`` training views, composited on white (the report's figure)."""
    from .blender import load_split  # blender imports torch: only the preview needs it

    s = load_split(scene_dir, "train")
    imgs = (s.rgb("white")[:n].numpy() * 255).round().astype(np.uint8)
    gap = np.full((imgs.shape[1], max(2, imgs.shape[2] // 25), 3), 255, np.uint8)
    row = np.concatenate(sum([[im, gap] for im in imgs], [])[:-1], axis=1)
    out_png = Path(out_png)
    return write_atomic(out_png, lambda f: Image.fromarray(row).save(f, format="PNG"))
