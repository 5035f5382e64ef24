"""Variants of a Problem 2 data root (``mini/`` + ``office/``), to judge a recipe on several
sets instead of the one it was tuned on.

* :func:`cut_mini` -- the pre-training corpus cut to ``n`` images a class (the others as is);
* :func:`resplit_office` -- the downstream images pooled and split again with another seed,
  each class keeping its train/val counts.

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
    (out / "office").mkdir(parents=True, exist_ok=True)
    for split, items in new.items():
        d = out / "office" / split
        if d.exists():
            shutil.rmtree(d)
        d.mkdir()
        rows = []
        for src_split, r in items:
            # a file name may occur in both source folders: prefix with its origin
            name = f"{src_split}_{r.filename}"
            os.symlink((off / src_split / r.filename).resolve(), d / name)
            rows.append(Row(r.id, name, r.label))
        _write_csv(out / "office" / f"{split}.csv", rows)
    _link(base / "mini", out / "mini")
    return out
