"""Procedural image corpora in the course's csv layout: a stand-in for Mini-ImageNet and
Office-Home.

A class is a combination of four visual primitives -- a *shape*, a *texture* painted on it, a
*colour* family and a *layout* (one object or a pair). Each image draws a random pose (rotation,
scale, position, stretch), a random background, clutter (small distractor shapes behind the
object) and lighting (a brightness gradient and noise).

``mini`` (64 classes) and ``office`` (65 classes) use disjoint (shape, texture, colour) triples,
built from the SAME primitives, so an office class is a new combination of parts a network has
seen during pre-training on mini: features that recognise the parts transfer, while a network
trained from scratch on the few office images per class has to learn them from little data.
``office`` also mimics a real photo set: varied image sizes and some grayscale, palette and
RGBA files.
"""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import atomic_write_text, write_atomic
from ..config import CorpusGen
from ..errors import UserError
from .csvimages import load_rgb, read_csv

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
N_MINI, N_OFFICE = 64, 65


@dataclass(frozen=True)
class ClassSpec:
    shape: str
    texture: str
    colour: str
    layout: str

    @property
    def name(self) -> str:
        return f"{self.colour}_{self.texture}_{self.shape}_{self.layout}"


def class_specs(seed: int = 0) -> tuple[list[ClassSpec], list[ClassSpec]]:
    """The mini and office classes: disjoint (shape, texture, colour) triples, every primitive
    used by mini (so nothing office needs is unseen in pre-training)."""
    triples = list(itertools.product(SHAPES, TEXTURES, COLOURS))
    for attempt in itertools.count():
        rng = np.random.default_rng([seed, 7919, attempt])
        order = rng.permutation(len(triples))
        chosen = [triples[i] for i in order[: N_MINI + N_OFFICE]]
        mini = chosen[:N_MINI]
        if all(
            {t[k] for t in mini} == set(vals)
            for k, vals in enumerate((SHAPES, TEXTURES, tuple(COLOURS)))
        ):
            break
    layouts = rng.integers(0, len(LAYOUTS), size=len(chosen))
    specs = [ClassSpec(s, t, c, LAYOUTS[lay]) for (s, t, c), lay in zip(chosen, layouts)]
    return (
        sorted(specs[:N_MINI], key=lambda c: c.name),
        sorted(specs[N_MINI:], key=lambda c: c.name),
    )


# --------------------------------------------------------------------------------------------
# rendering: every primitive is an implicit function of object coordinates (x, y), roughly a
# signed distance in object units (negative inside), so edges can be anti-aliased analytically.


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


def render(spec: ClassSpec, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """One image of class ``spec`` as float32 (h, w, 3) in [0, 1]."""
    X, Y, px = _coords(h, w)
    ax, ay = 0.5 * w / min(h, w), 0.5 * h / min(h, w)  # half extents in these units
    # background: a random low-saturation colour with a linear gradient
    bg0 = _hsv_to_rgb(rng.random(), rng.uniform(0, 0.35), rng.uniform(0.25, 0.95))
    bg1 = _hsv_to_rgb(rng.random(), rng.uniform(0, 0.35), rng.uniform(0.25, 0.95))
    g = np.clip(0.5 + (X * np.cos(a := rng.uniform(0, 2 * np.pi)) + Y * np.sin(a)), 0, 1)
    img = (bg0 * (1 - g[..., None]) + bg1 * g[..., None]).astype(np.float32)
    # clutter: small distractor shapes of any primitive, behind the object
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
    # the class object(s)
    colour = _hsv_to_rgb(
        COLOURS[spec.colour] + rng.uniform(-0.025, 0.025),
        rng.uniform(0.65, 1.0),
        rng.uniform(0.7, 1.0),
    )
    freq, phase = 4.0 * rng.uniform(0.85, 1.15), rng.uniform(0, 2 * np.pi)
    if spec.layout == "single":
        r = rng.uniform(0.26, 0.38)
        centres = [(rng.uniform(-0.12, 0.12), rng.uniform(-0.12, 0.12))]
    else:
        r = rng.uniform(0.16, 0.22)
        a = rng.uniform(0, np.pi)
        sep = rng.uniform(0.22, 0.28)
        ox, oy = rng.uniform(-0.06, 0.06, size=2)
        centres = [
            (ox + sep * np.cos(a), oy + sep * np.sin(a)),
            (ox - sep * np.cos(a), oy - sep * np.sin(a)),
        ]
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
    # lighting: a brightness gradient, then sensor noise
    b = rng.uniform(0.75, 1.15) + rng.uniform(0, 0.3) * (
        X * np.cos(a := rng.uniform(0, 2 * np.pi)) + Y * np.sin(a)
    )
    noise = rng.standard_normal(img.shape, dtype=np.float32) * np.float32(rng.uniform(0.01, 0.04))
    img = img * b[..., None].astype(np.float32) + noise
    return np.clip(img, 0.0, 1.0).astype(np.float32)


def _to_pil(img: np.ndarray) -> Image.Image:
    return Image.fromarray((img * 255 + 0.5).astype(np.uint8), "RGB")


def _encode(im: Image.Image, mode: str) -> tuple[bytes, str]:
    """Image bytes and extension for a target file mode: RGB/L as JPEG, P/RGBA as PNG."""
    buf = io.BytesIO()
    if mode == "L":
        im.convert("L").save(buf, "JPEG", quality=90)
        return buf.getvalue(), ".jpg"
    if mode == "P":
        im.quantize(64, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(buf, "PNG")
        return buf.getvalue(), ".png"
    if mode == "RGBA":
        a = np.full(im.size[::-1], 255, np.uint8)
        a[: max(1, a.shape[0] // 10)] = 128  # a translucent top band, as a cut-out photo might have
        rgba = im.convert("RGBA")
        rgba.putalpha(Image.fromarray(a, "L"))
        rgba.save(buf, "PNG")
        return buf.getvalue(), ".png"
    im.save(buf, "JPEG", quality=90)
    return buf.getvalue(), ".jpg"


def _office_mode(k: int) -> str:
    """File mode of the k-th office image of a split: mostly RGB, a few of each other kind."""
    return {7: "L", 14: "P", 21: "RGBA"}.get(k % 25, "RGB")


def _write_split(
    out: Path,
    split_dir: str,
    csv_name: str,
    specs: list[ClassSpec],
    per_class: int,
    seed: int,
    code: int,
    size_fn,
    mode_fn,
    progress: bool,
    desc: str,
) -> None:
    from tqdm.auto import tqdm  # ~0.08 s to import: only a generating run pays it

    img_dir = out / split_dir
    img_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    jobs = [(ci, i) for i in range(per_class) for ci in range(len(specs))]
    for k, (ci, i) in enumerate(tqdm(jobs, desc=desc, disable=not progress, leave=False)):
        rng = np.random.default_rng([seed, code, ci, i])
        h, w = size_fn(rng)
        data, ext = _encode(_to_pil(render(specs[ci], h, w, rng)), mode_fn(k))
        fname = f"{specs[ci].name}_{i:04d}{ext}"
        (img_dir / fname).write_bytes(data)
        rows.append((k, fname, specs[ci].name))
    buf = io.StringIO()
    w_ = csv.writer(buf, lineterminator="\n")
    w_.writerow(["id", "filename", "label"])
    w_.writerows(rows)
    atomic_write_text(out / csv_name, buf.getvalue())


def generate_corpora(out: Path, cfg: CorpusGen, seed: int = 0, progress: bool = True) -> Path:
    """Write ``out/mini/{train.csv,train/}`` and ``out/office/{train,val}.csv`` + image folders.

    Deterministic for (cfg, seed). Returns ``out``.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory; choose another --out")
    for v, name in (
        (cfg.mini_per_class, "mini_per_class"),
        (cfg.office_train_per_class, "office_train_per_class"),
        (cfg.office_val_per_class, "office_val_per_class"),
        (cfg.mini_size, "mini_size"),
    ):
        if v < 1:
            raise UserError(f"corpus setting {name}={v}: must be at least 1")
    mini, office = class_specs(seed)
    s = cfg.mini_size
    lo, hi = max(16, int(0.75 * s)), int(2 * s)

    def office_size(rng: np.random.Generator) -> tuple[int, int]:
        return int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))

    _write_split(
        out / "mini",
        "train",
        "train.csv",
        mini,
        cfg.mini_per_class,
        seed,
        1,
        lambda rng: (s, s),
        lambda k: "RGB",
        progress,
        "mini/train",
    )
    _write_split(
        out / "office",
        "train",
        "train.csv",
        office,
        cfg.office_train_per_class,
        seed,
        2,
        office_size,
        _office_mode,
        progress,
        "office/train",
    )
    _write_split(
        out / "office",
        "val",
        "val.csv",
        office,
        cfg.office_val_per_class,
        seed,
        3,
        office_size,
        _office_mode,
        progress,
        "office/val",
    )
    return out


def preview(
    data_root: str | Path, out_png: str | Path, classes: int = 8, per_class: int = 6, size: int = 64
) -> Path:
    """A grid of samples: ``classes`` mini classes (rows) then as many office classes, each
    row ``per_class`` images; written atomically as a PNG."""

    data_root, out_png = Path(data_root), Path(out_png)
    tiles = []
    for part, split in (("mini", "train"), ("office", "train")):
        rows = read_csv(data_root / part / f"{split}.csv", data_root / part / split)
        by_class: dict[str, list] = {}
        for r in rows:
            by_class.setdefault(r.label, []).append(r)
        names = sorted(by_class)
        for label in names[:: max(1, len(names) // classes)][:classes]:
            imgs = [
                np.asarray(load_rgb(data_root / part / split / r.filename).resize((size, size)))
                for r in by_class[label][:per_class]
            ]
            imgs += [np.full((size, size, 3), 255, np.uint8)] * (per_class - len(imgs))
            tiles.append(np.concatenate(imgs, axis=1))
    grid = np.concatenate(tiles, axis=0)
    return write_atomic(out_png, lambda f: Image.fromarray(grid).save(f, format="PNG"))
