"""Variants of a Problem 2 data root (``mini/`` + ``office/``), to judge a recipe on several
sets instead of the one it was tuned on.

* :func:`cut_mini` -- the pre-training corpus cut to ``n`` images a class (the others as is);
* :func:`resplit_office` -- the downstream images pooled and split again with another seed,
  each class keeping its train/val counts;
* :func:`photos_office` -- the downstream drawn from ``mini``'s own photos: the domain BYOL
  pre-trains on, to tell a domain gap from features that are not learned;
* :func:`heldout_office` -- the same downstream with its classes taken out of ``mini``: photos
  of classes BYOL never saw.

Images are linked, not copied (a variant costs a few csv lines); ``mini``'s labels are used
only to cut evenly and by the kNN monitor, never by BYOL.
"""

from __future__ import annotations

import csv
import os
import random
import shutil
from collections import defaultdict
from pathlib import Path

from ..errors import UserError
from .csvimages import Row, read_csv


def _write_csv(path: Path, rows: list[Row]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "filename", "label"])
        for i, r in enumerate(rows):
            w.writerow([i, r.filename, r.label or ""])


def _link(src: Path, dst: Path) -> None:
    """``dst`` -> ``src`` (absolute), replacing what was there."""
    if dst.is_symlink() or dst.is_file():
        dst.unlink()
    elif dst.is_dir():
        shutil.rmtree(dst)
    os.symlink(src.resolve(), dst)


def _by_class(rows: list[Row], what: Path) -> dict[str, list[Row]]:
    out: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        if r.label is None:
            raise UserError(f"{what}: row {r.id} has no label; a variant keeps classes balanced")
        out[r.label].append(r)
    return dict(sorted(out.items()))


def cut_mini(base: Path, out: Path, per_class: int, seed: int = 0) -> Path:
    """``out``: ``base`` with ``mini`` cut to ``per_class`` images a class (drawn with
    ``seed``); ``office`` linked unchanged."""
    base, out = Path(base), Path(out)
    rows = read_csv(base / "mini" / "train.csv", base / "mini" / "train", require_label=True)
    rng = random.Random(seed)
    kept = []
    for label, rs in _by_class(rows, base / "mini" / "train.csv").items():
        if len(rs) < per_class:
            raise UserError(
                f"{base / 'mini' / 'train.csv'}: class {label} has {len(rs)} images, fewer "
                f"than the {per_class} asked; ask for at most {len(rs)}"
            )
        kept += rng.sample(rs, per_class)
    (out / "mini").mkdir(parents=True, exist_ok=True)
    _write_csv(out / "mini" / "train.csv", kept)
    _link(base / "mini" / "train", out / "mini" / "train")
    _link(base / "office", out / "office")
    return out


def resplit_office(base: Path, out: Path, seed: int) -> Path:
    """``out``: ``base`` with ``office``'s train and val images pooled and split again with
    ``seed`` (each class keeps its train count); ``mini`` linked unchanged."""
    base, out = Path(base), Path(out)
    off = base / "office"
    parts = {s: read_csv(off / f"{s}.csv", off / s, require_label=True) for s in ("train", "val")}
    train_by = _by_class(parts["train"], off / "train.csv")
    val_by = _by_class(parts["val"], off / "val.csv")
    rng = random.Random(seed)
    new: dict[str, list[tuple[str, Row]]] = {"train": [], "val": []}
    for label in sorted(set(train_by) | set(val_by)):
        pool = [("train", r) for r in train_by.get(label, [])]
        pool += [("val", r) for r in val_by.get(label, [])]
        rng.shuffle(pool)
        n_train = len(train_by.get(label, []))
        new["train"] += pool[:n_train]
        new["val"] += pool[n_train:]
    # a file name may occur in both source folders: prefix with its origin
    _write_office(
        out,
        {
            split: [
                (off / src / r.filename, Row(r.id, f"{src}_{r.filename}", r.label))
                for src, r in items
            ]
            for split, items in new.items()
        },
    )
    _link(base / "mini", out / "mini")
    return out


def _write_office(out: Path, splits: dict[str, list[tuple[Path, Row]]]) -> None:
    """``out/office/<split>/`` of links to each (source image, row) and its ``<split>.csv``."""
    (out / "office").mkdir(parents=True, exist_ok=True)
    for split, items in splits.items():
        d = out / "office" / split
        if d.exists():
            shutil.rmtree(d)
        d.mkdir()
        for src, r in items:
            os.symlink(src.resolve(), d / r.filename)
        _write_csv(out / "office" / f"{split}.csv", [r for _, r in items])


def _photos_downstream(base: Path, out: Path, n_classes: int, seed: int) -> tuple[set, list[Row]]:
    """``out/office``: ``n_classes`` of ``base``'s ``mini`` classes (drawn with ``seed``), each
    with as many train and val images as ``base``'s office has at the least. Returns those
    classes and ``mini``'s rows (read once, for a variant that cuts them)."""
    off = base / "office"
    counts = {}
    for split in ("train", "val"):
        by = _by_class(read_csv(off / f"{split}.csv", off / split, require_label=True), off)
        counts[split] = min(len(v) for v in by.values())
    mini_csv, mini = base / "mini" / "train.csv", base / "mini" / "train"
    mini_rows = read_csv(mini_csv, mini, require_label=True)
    by_mini = _by_class(mini_rows, mini_csv)
    need = counts["train"] + counts["val"]
    pool = sorted(c for c, rs in by_mini.items() if len(rs) >= need)
    if len(pool) < n_classes:
        raise UserError(
            f"{mini_csv}: {len(pool)} classes have the {need} images a class asked; "
            f"ask for at most {len(pool)} classes"
        )
    rng = random.Random(seed)
    classes = sorted(rng.sample(pool, n_classes))
    split_rows: dict[str, list[Row]] = {"train": [], "val": []}
    for c in classes:
        rs = rng.sample(by_mini[c], need)
        split_rows["train"] += rs[: counts["train"]]
        split_rows["val"] += rs[counts["train"] :]
    _write_office(out, {k: [(mini / r.filename, r) for r in rs] for k, rs in split_rows.items()})
    return set(classes), mini_rows


def photos_office(base: Path, out: Path, n_classes: int, seed: int = 0) -> Path:
    """``out``: ``base`` with ``office`` replaced by ``n_classes`` of ``mini``'s classes (drawn
    with ``seed``), as many train and val images a class as ``base``'s office has at the least;
    ``mini`` linked unchanged, so BYOL saw these images, without labels (as the ImageNet linear
    protocol trains its probe on pre-training images)."""
    base, out = Path(base), Path(out)
    _photos_downstream(base, out, n_classes, seed)
    _link(base / "mini", out / "mini")
    return out


def heldout_office(base: Path, out: Path, n_classes: int, seed: int = 0) -> Path:
    """``out``: :func:`photos_office`'s downstream (the same classes and images for a seed), and
    ``mini`` without those classes: BYOL never sees the downstream's images nor its classes, as
    with Mini-ImageNet and Office-Home. Needs its own BYOL runs."""
    base, out = Path(base), Path(out)
    held, rows = _photos_downstream(base, out, n_classes, seed)
    (out / "mini").mkdir(parents=True, exist_ok=True)
    _write_csv(out / "mini" / "train.csv", [r for r in rows if r.label not in held])
    _link(base / "mini" / "train", out / "mini" / "train")
    return out
