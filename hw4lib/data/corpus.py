"""Procedural image corpora in the course's csv layout: a stand-in for Mini-ImageNet and
Office-Home (each image drawn by :mod:`hw4lib.data.drawing`).

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
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import atomic_write_text, write_atomic
from ..config import CorpusGen
from ..errors import UserError
from .csvimages import load_rgb, read_csv
from .drawing import COLOURS, LAYOUTS, SHAPES, TEXTURES, ClassSpec, render

N_MINI, N_OFFICE = 64, 65


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


#: an image's (height, width), drawn from its own generator
SizeFn = Callable[[np.random.Generator], tuple[int, int]]


def _write_split(
    out: Path,
    split: str,
    specs: list[ClassSpec],
    per_class: int,
    seed: int,
    code: int,
    size_fn: SizeFn,
    mode_fn: Callable[[int], str],
    progress: bool,
) -> None:
    """Draw ``out/<split>/*`` and write ``out/<split>.csv``: ``per_class`` images a class, the
    i-th of a class from its own generator seeded by (seed, code, class, i)."""
    from tqdm.auto import tqdm  # ~0.08 s to import: only a generating run pays it

    img_dir = out / split
    img_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    jobs = [(ci, i) for i in range(per_class) for ci in range(len(specs))]
    desc = f"{out.name}/{split}"
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
    atomic_write_text(out / f"{split}.csv", buf.getvalue())


def _check_settings(out: Path, cfg: CorpusGen) -> None:
    """Refuse an ``out`` that is a file and settings below one, each in one line."""
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


def generate_corpora(out: Path, cfg: CorpusGen, seed: int = 0, progress: bool = True) -> Path:
    """Write ``out/mini/{train.csv,train/}`` and ``out/office/{train,val}.csv`` + image folders.

    Deterministic for (cfg, seed). Returns ``out``.
    """
    out = Path(out)
    _check_settings(out, cfg)
    mini, office = class_specs(seed)
    s = cfg.mini_size
    lo, hi = max(16, int(0.75 * s)), int(2 * s)

    def office_size(rng: np.random.Generator) -> tuple[int, int]:
        return int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))

    # (folder, split, classes, images a class, the split's seed code, sizes, file modes)
    splits: tuple[tuple[str, str, list[ClassSpec], int, int, SizeFn, Callable], ...] = (
        ("mini", "train", mini, cfg.mini_per_class, 1, lambda rng: (s, s), lambda k: "RGB"),
        ("office", "train", office, cfg.office_train_per_class, 2, office_size, _office_mode),
        ("office", "val", office, cfg.office_val_per_class, 3, office_size, _office_mode),
    )
    for part, split, specs, n, code, size_fn, mode_fn in splits:
        _write_split(out / part, split, specs, n, seed, code, size_fn, mode_fn, progress)
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
