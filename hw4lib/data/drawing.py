"""Drawing one image of a procedural class (:mod:`hw4lib.data.corpus` writes the corpora).

A class is a combination of four visual primitives -- a *shape*, a *texture* painted on it, a
*colour* family and a *layout* (one object or a pair). Each image draws a random pose (rotation,
scale, position, stretch), a random background, clutter (small distractor shapes behind the
object) and lighting (a brightness gradient and noise).

Every primitive is an implicit function of object coordinates (x, y), roughly a signed distance
in object units (negative inside), so edges can be anti-aliased analytically.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SHAPES = ("circle", "triangle", "square", "star", "cross", "ring", "crescent", "bar")
TEXTURES = ("solid", "striped", "checkered", "dotted", "gridded", "ringed")
COLOURS = {
    "red": 0.0,
    "orange": 0.08,
    "yellow": 0.15,
    "green": 0.33,
    "cyan": 0.5,
    "blue": 0.62,
    "purple": 0.76,
    "pink": 0.9,
}
LAYOUTS = ("single", "pair")


@dataclass(frozen=True)
class ClassSpec:
    """One class: its four primitives."""

    shape: str
    texture: str
    colour: str
    layout: str

    @property
    def name(self) -> str:
        return f"{self.colour}_{self.texture}_{self.shape}_{self.layout}"


def _polygon(x: np.ndarray, y: np.ndarray, n: int, apothem: float) -> np.ndarray:
    ang = np.arange(n) * 2 * np.pi / n + np.pi / 2
    return np.max(x[..., None] * np.cos(ang) + y[..., None] * np.sin(ang), axis=-1) - apothem


def shape_distance(shape: str, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Approximate signed distance of ``shape`` (object radius ~0.85) at object coords."""
    r = np.hypot(x, y)
    if shape == "circle":
        return r - 0.8
    if shape == "triangle":
        return _polygon(x, -y + 0.1, 3, 0.45)
    if shape == "square":
        return np.maximum(np.abs(x), np.abs(y)) - 0.62
    if shape == "star":
        th = np.arctan2(y, x)
        return (r - (0.58 + 0.3 * np.cos(5 * th))) * 0.6
    if shape == "cross":
        a, b = np.abs(x), np.abs(y)
        return np.minimum(np.maximum(a - 0.24, b - 0.85), np.maximum(a - 0.85, b - 0.24))
    if shape == "ring":
        return np.abs(r - 0.6) - 0.24
    if shape == "crescent":
        return np.maximum(r - 0.82, 0.62 - np.hypot(x - 0.42, y + 0.1))
    if shape == "bar":
        return np.maximum(np.abs(x) - 0.88, np.abs(y) - 0.3)
    raise ValueError(shape)


def texture_pattern(
    texture: str, x: np.ndarray, y: np.ndarray, freq: float, phase: float
) -> np.ndarray:
    """Texture intensity in [0, 1] at object coords (1 = the darker second tone)."""
    s = freq * np.pi
    if texture == "solid":
        return np.zeros_like(x)
    if texture == "striped":
        return (np.sin(s * x + phase) > 0).astype(np.float32)
    if texture == "checkered":
        return ((np.sin(s * x + phase) * np.sin(s * y + phase)) > 0).astype(np.float32)
    if texture == "dotted":
        p = 2.0 / freq
        u, v = (x + phase / s) % p - p / 2, (y + phase / s) % p - p / 2
        return (np.hypot(u, v) < 0.3 * p).astype(np.float32)
    if texture == "gridded":
        p = 2.0 / freq
        u, v = (x + phase / s) % p, (y + phase / s) % p
        return ((u < 0.25 * p) | (v < 0.25 * p)).astype(np.float32)
    if texture == "ringed":
        return (np.sin(s * np.hypot(x, y) + phase) > 0).astype(np.float32)
    raise ValueError(texture)


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    import colorsys

    return np.array(colorsys.hsv_to_rgb(h % 1.0, s, v), dtype=np.float32)


def _coords(h: int, w: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Pixel-centre coordinates normalised by the short side (y down)."""
    m = min(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    return (xx + 0.5 - w / 2) / m, (yy + 0.5 - h / 2) / m, 1.0 / m


def _paint(
    img: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    px: float,
    shape: str,
    texture: str,
    colour: np.ndarray,
    cx: float,
    cy: float,
    radius: float,
    rot: float,
    stretch: float,
    freq: float,
    phase: float,
    opacity: float = 1.0,
) -> None:
    """Composite one object onto ``img`` in place (computed only inside its bounding box)."""
    h, w = X.shape
    ext = radius * 1.25 * max(stretch, 1.0 / stretch)  # every shape lies within ~0.9 radius
    x0, x1 = np.searchsorted(X[0], [cx - ext, cx + ext])
    y0, y1 = np.searchsorted(Y[:, 0], [cy - ext, cy + ext])
    if x1 <= x0 or y1 <= y0:
        return
    img, X, Y = img[y0:y1, x0:x1], X[y0:y1, x0:x1], Y[y0:y1, x0:x1]
    c, s = np.cos(rot), np.sin(rot)
    dx, dy = (X - cx) / radius, (Y - cy) / radius
    x = (c * dx + s * dy) / stretch
    y = (-s * dx + c * dy) * stretch
    d = shape_distance(shape, x, y)
    # anti-aliased coverage: one pixel is px / radius object units
    cover = np.clip(0.5 - d * radius / px, 0.0, 1.0) * opacity
    t = texture_pattern(texture, x, y, freq, phase)
    rgb = colour[None, None, :] * (1.0 - 0.6 * t[..., None])
    img *= 1.0 - cover[..., None]
    img += cover[..., None] * rgb


def _background(X: np.ndarray, Y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random low-saturation colour with a linear gradient."""
    bg0 = _hsv_to_rgb(rng.random(), rng.uniform(0, 0.35), rng.uniform(0.25, 0.95))
    bg1 = _hsv_to_rgb(rng.random(), rng.uniform(0, 0.35), rng.uniform(0.25, 0.95))
    g = np.clip(0.5 + (X * np.cos(a := rng.uniform(0, 2 * np.pi)) + Y * np.sin(a)), 0, 1)
    return (bg0 * (1 - g[..., None]) + bg1 * g[..., None]).astype(np.float32)


def _clutter(
    img: np.ndarray, X: np.ndarray, Y: np.ndarray, px: float, rng: np.random.Generator
) -> None:
    """Small distractor shapes of any primitive, painted in place (behind the object)."""
    h, w = X.shape
    ax, ay = 0.5 * w / min(h, w), 0.5 * h / min(h, w)  # half extents in these units
    for _ in range(rng.integers(0, 4)):
        _paint(
            img,
            X,
            Y,
            px,
            SHAPES[rng.integers(len(SHAPES))],
            "solid",
            _hsv_to_rgb(rng.random(), rng.uniform(0.2, 0.9), rng.uniform(0.3, 1.0)),
            rng.uniform(-ax, ax),
            rng.uniform(-ay, ay),
            rng.uniform(0.06, 0.12),
            rng.uniform(0, 2 * np.pi),
            1.0,
            1.0,
            0.0,
            rng.uniform(0.5, 1.0),
        )


def _placement(layout: str, rng: np.random.Generator) -> tuple[float, list[tuple[float, float]]]:
    """The objects' radius and centres: one near the middle, or a pair either side of it."""
    if layout == "single":
        return rng.uniform(0.26, 0.38), [(rng.uniform(-0.12, 0.12), rng.uniform(-0.12, 0.12))]
    r = rng.uniform(0.16, 0.22)
    a = rng.uniform(0, np.pi)
    sep = rng.uniform(0.22, 0.28)
    ox, oy = rng.uniform(-0.06, 0.06, size=2)
    return r, [
        (ox + sep * np.cos(a), oy + sep * np.sin(a)),
        (ox - sep * np.cos(a), oy - sep * np.sin(a)),
    ]


def _objects(
    img: np.ndarray,
    X: np.ndarray,
    Y: np.ndarray,
    px: float,
    spec: ClassSpec,
    rng: np.random.Generator,
) -> None:
    """The class object(s), painted in place: one colour and texture phase, each its own pose."""
    colour = _hsv_to_rgb(
        COLOURS[spec.colour] + rng.uniform(-0.025, 0.025),
        rng.uniform(0.65, 1.0),
        rng.uniform(0.7, 1.0),
    )
    freq, phase = 4.0 * rng.uniform(0.85, 1.15), rng.uniform(0, 2 * np.pi)
    r, centres = _placement(spec.layout, rng)
    for cx, cy in centres:
        _paint(
            img,
            X,
            Y,
            px,
            spec.shape,
            spec.texture,
            colour,
            cx,
            cy,
            r * rng.uniform(0.9, 1.1),
            rng.uniform(0, 2 * np.pi),
            rng.uniform(0.85, 1.15),
            freq,
            phase,
        )


def render(spec: ClassSpec, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """One image of class ``spec`` as float32 (h, w, 3) in [0, 1]."""
    X, Y, px = _coords(h, w)
    img = _background(X, Y, rng)
    _clutter(img, X, Y, px, rng)
    _objects(img, X, Y, px, spec, rng)
    # lighting: a brightness gradient, then sensor noise
    b = rng.uniform(0.75, 1.15) + rng.uniform(0, 0.3) * (
        X * np.cos(a := rng.uniform(0, 2 * np.pi)) + Y * np.sin(a)
    )
    noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(0.01, 0.04))
    img = img * b[..., None].astype(np.float32) + noise
    return np.clip(img, 0.0, 1.0).astype(np.float32)
