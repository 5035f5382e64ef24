"""Image folders in the course's csv layout: ``id,filename,label`` (label = class name).

The label column may be missing or empty (the grader's test csv). Every image is converted
to RGB. The class-name <-> index mapping is a sorted list of names, saved with each model.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PIL import Image

from ..errors import UserError


@dataclass(frozen=True)
class Row:
    id: str
    filename: str
    label: str | None


def read_csv(
    csv_path: str | Path,
    image_dir: str | Path | None = None,
    require_label: bool = False,
    check_images: bool = True,
) -> list[Row]:
    """Read and validate a csv; with ``check_images`` every file must exist under ``image_dir``."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise UserError(f"{csv_path}: csv file not found")
    try:
        return _read_rows(csv_path, image_dir, require_label, check_images)
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{csv_path}: not a readable utf-8 csv ({type(e).__name__}: {e})") from None


def _read_rows(
    csv_path: Path, image_dir: str | Path | None, require_label: bool, check_images: bool
) -> list[Row]:
    with open(csv_path, newline="", encoding="utf-8-sig") as f:  # -sig: Excel's BOM
        reader = csv.DictReader(f)
        fields = [c.strip() for c in (reader.fieldnames or [])]
        if "filename" not in fields:
            raise UserError(
                f"{csv_path}: no 'filename' column (header is {fields}); the course "
                "layout is id,filename,label"
            )
        if require_label and "label" not in fields:
            raise UserError(f"{csv_path}: no 'label' column; training needs id,filename,label")
        rows = []
        for i, r in enumerate(reader):
            r = {(k or "").strip(): (v or "").strip() for k, v in r.items()}
            label = r.get("label") or None
            if require_label and label is None:
                raise UserError(f"{csv_path}: row {i + 2} has an empty label")
            if not r["filename"]:
                raise UserError(f"{csv_path}: row {i + 2} has an empty filename")
            rows.append(Row(r.get("id", str(i)) or str(i), r["filename"], label))
    if not rows:
        raise UserError(f"{csv_path}: the csv has a header but no rows")
    if check_images and image_dir is not None:
        d = Path(image_dir)
        if not d.is_dir():
            raise UserError(f"{d}: image directory not found (csv {csv_path})")
        for r in rows:
            if not (d / r.filename).is_file():
                raise UserError(f"{d / r.filename}: image listed in {csv_path} is missing")
    return rows


def classes_of(rows: list[Row]) -> list[str]:
    """The sorted class names; index i is class ``classes[i]``."""
    return sorted({r.label for r in rows if r.label is not None})


def load_rgb(path: str | Path) -> Image.Image:
    """Open any image (grayscale, palette, RGBA, CMYK) as RGB, with a one-line error if broken."""
    try:
        with Image.open(path) as im:
            im.load()
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                im = im.convert("RGBA")
                bg = Image.new("RGBA", im.size, (255, 255, 255, 255))
                return Image.alpha_composite(bg, im).convert("RGB")
            return im.convert("RGB")
    except FileNotFoundError:
        raise UserError(f"{path}: image not found") from None
    except Exception as e:
        raise UserError(f"{path}: cannot read image ({type(e).__name__}: {e})") from None


class CsvImageDataset:
    """A torch-style dataset over a csv: item = (transformed image, class index or -1)."""

    def __init__(
        self,
        csv_path: str | Path,
        image_dir: str | Path,
        transform: Callable | None = None,
        classes: list[str] | None = None,
        require_label: bool = False,
    ):
        self.csv_path, self.image_dir = Path(csv_path), Path(image_dir)
        self.rows = read_csv(csv_path, image_dir, require_label=require_label)
        self.classes = list(classes) if classes is not None else classes_of(self.rows)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        unknown = sorted(
            {r.label for r in self.rows if r.label is not None} - set(self.class_to_idx)
        )
        if unknown and classes is not None:
            raise UserError(
                f"{self.csv_path}: label(s) {unknown[:5]} unknown to the model "
                f"(it knows {len(self.classes)} classes); "
                "use a csv of the same classes"
            )
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def label_index(self, i: int) -> int:
        lab = self.rows[i].label
        return -1 if lab is None else self.class_to_idx[lab]

    def __getitem__(self, i: int):
        img = load_rgb(self.image_dir / self.rows[i].filename)
        if self.transform is not None:
            img = self.transform(img)
        return img, self.label_index(i)
