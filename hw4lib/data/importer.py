"""Import a class-folder image tree into the course's csv layout.

Real datasets often come as ``<class>/*.jpg`` or, like Office-Home's official archive,
``<domain>/<class>/*.jpg`` (Art, Clipart, Product, Real World). :func:`import_folder` writes::

    out/train.csv, out/val.csv     id,filename,label   (label = class folder name)
    out/train/<class>_<nnnnn>.<ext>, out/val/...        (copied bytes, names unique)

with a deterministic class-stratified split: each class's files are sorted, shuffled with a
generator seeded by (seed, class name), and the first round(val_fraction * n) go to val (at
least one when the class has two or more images and val_fraction > 0; at least one stays in
train). The course's ``office`` set has the counts of Office-Home's "Real World" domain
(3951 + 406 = 4357 images), so ``--domain "Real World"`` rebuilds a set of the same shape.
"""

from __future__ import annotations

import csv
import io
import json
import random
import shutil
from pathlib import Path

from PIL import Image

from ..errors import UserError
from .outdir import make_tmp, replace_dir

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MARKER = ".hw4-import.json"


def _images_in(d: Path) -> list[Path]:
    return sorted(
        p
        for p in d.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTS
    )


def _subdirs(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_classes(src: str | Path, domain: str | None = None) -> dict[str, list[Path]]:
    """Class name -> image files, from ``src/<class>/`` or ``src/<domain>/<class>/``.

    With domains, ``domain`` picks one; otherwise the domains are merged class by class.
    """
    src = Path(src)
    if not src.is_dir():
        raise UserError(
            f"{src}: source folder not found (expected <class>/*.jpg or <domain>/<class>/*.jpg)"
        )
    tops = _subdirs(src)
    flat = [d for d in tops if _images_in(d)]
    nested = [d for d in tops if not _images_in(d) and any(_images_in(c) for c in _subdirs(d))]
    if flat and nested:
        raise UserError(
            f"{src}: mixes class folders with images ({flat[0].name}/) and domain "
            f"folders of class folders ({nested[0].name}/); "
            "import one layout at a time"
        )
    if flat:
        if domain:
            raise UserError(
                f"{src}: --domain {domain!r} given but the tree is <class>/*.jpg "
                "(no domain level); drop --domain"
            )
        return {d.name: _images_in(d) for d in flat}
    if not nested:
        raise UserError(
            f"{src}: no class folders with images (expected <class>/*.jpg or "
            f"<domain>/<class>/*.jpg with extensions {', '.join(IMAGE_EXTS)})"
        )
    if domain:
        names = [d.name for d in nested]
        if domain not in names:
            raise UserError(f"{src}: no domain folder {domain!r}; found {names}")
        nested = [src / domain]
    classes: dict[str, list[Path]] = {}
    for dom in nested:
        for c in _subdirs(dom):
            files = _images_in(c)
            if files:
                classes.setdefault(c.name, []).extend(files)
    return classes


def stratified_split(
    classes: dict[str, list[Path]], val_fraction: float, seed: int = 0
) -> tuple[list[tuple[Path, str]], list[tuple[Path, str]]]:
    """Deterministic per-class split into (train, val) lists of (file, class)."""
    if not 0.0 <= val_fraction < 1.0:
        raise UserError(f"--val-fraction {val_fraction}: must be in [0, 1)")
    train, val = [], []
    for name in sorted(classes):
        files = sorted(classes[name])
        random.Random(f"{seed}:{name}").shuffle(files)  # str seeds are hashed deterministically
        n = len(files)
        k = round(val_fraction * n)
        if val_fraction > 0 and n >= 2:
            k = max(k, 1)
        k = min(k, n - 1)
        val += [(f, name) for f in sorted(files[:k])]
        train += [(f, name) for f in sorted(files[k:])]
    return train, val


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)


def _verify(path: Path) -> None:
    try:
        with Image.open(path) as im:
            im.verify()
    except Exception as e:
        raise UserError(
            f"{path}: cannot read image ({type(e).__name__}: {e}); remove or "
            "replace it and import again"
        ) from None


def import_folder(
    src: str | Path,
    out: str | Path,
    val_fraction: float = 0.1,
    seed: int = 0,
    domain: str | None = None,
    progress: bool = True,
) -> dict:
    """Copy a class-folder tree into ``out`` in the course csv layout; returns a summary dict.

    Every image is opened first (a broken one stops the import); the output is written to a
    temporary folder and renamed, and a non-empty ``out`` that is not a previous import is
    refused.
    """
    from tqdm.auto import tqdm  # ~0.08 s to import: only a generating run pays it

    src, out = Path(src), Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise UserError(
            f"{out}: exists and is not an empty folder or a previous import; choose a new --out"
        )
    classes = find_classes(src, domain)
    train, val = stratified_split(classes, val_fraction, seed)
    for f, _ in tqdm(train + val, desc="verify images", disable=not progress, leave=False):
        _verify(f)
    tmp = make_tmp(out)
    counters: dict[str, int] = {}
    try:
        for split, items in (("train", train), ("val", val)):
            if not items and split == "val":
                continue
            (tmp / split).mkdir()
            buf = io.StringIO()
            w = csv.writer(buf, lineterminator="\n")
            w.writerow(["id", "filename", "label"])
            for i, (f, name) in enumerate(
                tqdm(items, desc=f"copy {split}", disable=not progress, leave=False)
            ):
                stem = _safe(name)  # counted per safe stem: "a b" and "a_b" cannot collide
                k = counters.get(stem, 0)
                counters[stem] = k + 1
                fname = f"{stem}_{k:05d}{f.suffix.lower()}"
                shutil.copyfile(f, tmp / split / fname)
                w.writerow([i, fname, name])
            (tmp / f"{split}.csv").write_text(buf.getvalue())
        summary = {
            "source": str(src.resolve()),
            "domain": domain,
            "val_fraction": val_fraction,
            "seed": seed,
            "classes": len(classes),
            "train": len(train),
            "val": len(val),
        }
        (tmp / MARKER).write_text(json.dumps(summary, indent=2))
        replace_dir(tmp, out, MARKER)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary
