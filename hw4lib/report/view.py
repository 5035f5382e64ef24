"""Notebook 02's interactive view: sliders for azimuth, elevation and radius that render the
trained DVGO model (and its depth) live; a fixed strip of views where nobody can move a slider
(papermill, nbval, a plain process).
"""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..config import resolve_device
from ..data.blender import BACKGROUNDS, read_transforms
from ..nerf.images import depth_to_uint8, load_run, near_far, render_image, to_uint8
from ..nerf.rays import orbit_poses
from .live import in_kernel


def camera_pose(azimuth_deg: float, elevation_deg: float, radius: float) -> torch.Tensor:
    """(4, 4) camera-to-world pose on a sphere around the origin, looking at it (z up)."""
    base = orbit_poses(1, radius, elevation_deg)[0]  # azimuth 0
    a = math.radians(azimuth_deg)
    rot = torch.eye(4)
    rot[:2, :2] = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return rot @ base


class SceneView:
    """A trained run rendered from any (azimuth, elevation, radius) at ``size`` pixels."""

    def __init__(
        self, run_dir: str | Path, data_dir: str | Path, size: int = 100, device: str = "cpu"
    ):
        self.model, meta = load_run(run_dir, device)
        self.data_dir, self.size = Path(data_dir), size  # named on the strip
        cams = read_transforms(Path(data_dir) / "transforms_train.json")
        self.cams = cams.resized(size, size)
        self.bg = BACKGROUNDS[meta.get("background", "white")]
        self.near, self.far = near_far(meta)
        pos = cams.poses[:, :3, 3]
        dist = pos.norm(dim=-1)
        self.radius = float(dist.mean())  # the training cameras' sphere
        self.elevation = float(torch.rad2deg(torch.asin((pos[:, 2] / dist).clamp(-1, 1))).mean())

    def render(
        self, azimuth: float, elevation: float, radius: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """(rgb (H, W, 3) uint8, depth (H, W) uint8: near white, far black)."""
        c = self.cams
        rgb, depth = render_image(
            self.model, c, camera_pose(azimuth, elevation, radius), self.bg, self.near, self.far
        )
        return to_uint8(rgb), depth_to_uint8(depth, self.near, self.far)

    def side_by_side_png(self, azimuth: float, elevation: float, radius: float) -> bytes:
        """The view and its depth map next to each other, as PNG bytes."""
        rgb, depth = self.render(azimuth, elevation, radius)
        both = np.concatenate([rgb, np.repeat(depth[..., None], 3, axis=-1)], axis=1)
        buf = io.BytesIO()
        Image.fromarray(both).save(buf, format="PNG")
        return buf.getvalue()

    def strip(self, n: int = 6):
        """A matplotlib figure: ``n`` views around the object at the training elevation and
        radius, with their depth maps below."""
        from .datadesc import scene_name
        from .figures import image_grid  # matplotlib: only when the strip is drawn

        azs = [360.0 * i / n for i in range(n)]
        views = [self.render(a, self.elevation, self.radius) for a in azs]
        return image_grid(
            [v[0] / 255.0 for v in views] + [v[1] / 255.0 for v in views],
            [f"azimuth {a:.0f}°" for a in azs] + ["depth"] * n,
            ncols=n,
            data=f"{scene_name(self.data_dir)}, trained model rendered at {self.size} px",
            cmap=None,
            size=1.8,
        )

    def widget(self, display_px: int = 400):
        """Sliders and the live image (a :class:`ipywidgets.VBox`)."""
        import ipywidgets as w

        r0 = self.radius
        az = w.FloatSlider(
            value=0.0, min=-180.0, max=180.0, step=5.0, description="azimuth", readout_format=".0f"
        )
        el = w.FloatSlider(
            value=round(self.elevation),
            min=-10.0,
            max=89.0,
            step=5.0,
            description="elevation",
            readout_format=".0f",
        )
        rad = w.FloatSlider(
            value=round(r0, 2),
            min=round(0.6 * r0, 2),
            max=round(1.5 * r0, 2),
            step=0.05,
            description="radius",
            readout_format=".2f",
        )
        for s in (az, el, rad):
            s.continuous_update = False  # render on release: each render takes a moment
        img = w.Image(format="png", width=display_px)
        note = w.Label()
        note.add_class("hw4-view-note")  # for the browser test to read

        def update(_=None) -> None:
            t0 = time.perf_counter()
            img.value = self.side_by_side_png(az.value, el.value, rad.value)
            note.value = (
                f"azimuth {az.value:.0f}°, elevation {el.value:.0f}°, radius "
                f"{rad.value:.2f}: rendered in {time.perf_counter() - t0:.2f} s "
                "(left: view, right: depth)"
            )

        for s in (az, el, rad):
            s.observe(update, names="value")
        update()
        box = w.VBox([w.HBox([az, el, rad]), img, note])
        box.add_class("hw4-scene-view")
        return box


def show(
    run_dir: str | Path,
    data_dir: str | Path,
    interactive: bool = True,
    size: int = 100,
    device: str = "cpu",
):
    """The sliders in a live JupyterLab session (``interactive`` and a kernel); else the fixed
    strip of views, as a figure."""
    view = SceneView(run_dir, data_dir, size, resolve_device(device))
    if interactive and in_kernel():
        from IPython.display import display

        display(view.widget())
        return None
    return view.strip()
