"""``hw4 data check DIR``: validate a Blender scene, a csv image folder, or a course root.

Unlike the loaders (which stop at the first problem with one line), the checker reads
everything and reports every problem it finds, plus a summary of what is there.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError
from .blender import SPLITS, read_transforms, resolve_image


@dataclass
class CheckReport:
    """What was checked: summary lines and problems (each names a file)."""

    path: Path
    kind: str = "unknown"
    summary: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def extend(self, other: "CheckReport") -> None:
        self.summary += other.summary
        self.problems += other.problems


def _open(path: Path) -> tuple[tuple[int, int], str] | str:
    """(size, mode) of a fully decoded image, or the reason it cannot be read."""
    try:
        with Image.open(path) as im:
            im.load()
            return im.size, im.mode
    except Exception as e:
        return f"{type(e).__name__}: {e}"


# ------------------------------------------------------------------ scenes
def check_scene(root: str | Path) -> CheckReport:
    root = Path(root)
    rep = CheckReport(root, "scene")
    found = [s for s in SPLITS if (root / f"transforms_{s}.json").is_file()]
    if not found:
        rep.problems.append(f"{root}: no transforms_{{train,val,test}}.json")
        return rep
    for split in found:
        _check_split(root, split, rep)
    return rep


def _read_frames(path: Path, rep: CheckReport) -> tuple[dict, list] | None:
    """A transforms file and its frames, or None with the problem recorded."""
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        rep.problems.append(f"{path}: not valid JSON ({e})")
        return None
    frames = meta.get("frames") if isinstance(meta, dict) else None
    if not isinstance(frames, list) or not frames:
        rep.problems.append(f"{path}: missing or empty 'frames'")
        return None
    if "camera_angle_x" not in meta and "fl_x" not in meta:
        rep.problems.append(f"{path}: missing key 'camera_angle_x' (or 'fl_x')")
    return meta, frames


def _camera_distance(path: Path, i: int, matrix: object, rep: CheckReport) -> float | None:
    """Frame ``i``'s camera distance from the origin; None if its matrix is no finite 4x4
    (each problem recorded, a rotation part that is not orthonormal too)."""
    try:
        m = np.asarray(matrix, dtype=np.float64)
    except (TypeError, ValueError):
        m = np.zeros(0)
    if m.shape != (4, 4):
        rep.problems.append(f"{path}: frame {i} transform_matrix is not a numeric 4x4 matrix")
        return None
    if not np.isfinite(m).all():
        rep.problems.append(f"{path}: frame {i} transform_matrix holds NaN or inf")
        return None
    R = m[:3, :3]
    if np.abs(R.T @ R - np.eye(3)).max() > 1e-3:
        rep.problems.append(f"{path}: frame {i} rotation part is not orthonormal")
    return float(np.linalg.norm(m[:3, 3]))


def _frame_image(
    root: Path, path: Path, i: int, fp: str, rep: CheckReport
) -> tuple[Path, tuple[tuple[int, int], str]] | None:
    """Frame ``i``'s image file and its (size, mode), or None with the problem recorded."""
    img = resolve_image(root, fp, must_exist=False)
    if img is None:
        rep.problems.append(f"{root / fp}: frame {i} image not found ({path.name})")
        return None
    got = _open(img)
    if isinstance(got, str):
        rep.problems.append(f"{img}: cannot read image ({got})")
        return None
    return img, got


def _check_split(root: Path, split: str, rep: CheckReport) -> None:
    path = root / f"transforms_{split}.json"
    read = _read_frames(path, rep)
    if read is None:
        return
    meta, frames = read
    n_before = len(rep.problems)
    sizes, modes, dist, seen = Counter(), Counter(), [], Counter()
    coverage = []
    for i, fr in enumerate(frames):
        if not isinstance(fr, dict) or "file_path" not in fr or "transform_matrix" not in fr:
            rep.problems.append(f"{path}: frame {i} needs keys 'file_path' and 'transform_matrix'")
            continue
        d = _camera_distance(path, i, fr["transform_matrix"], rep)
        if d is not None:
            dist.append(d)
        fp = str(fr["file_path"])
        seen[fp] += 1
        found = _frame_image(root, path, i, fp, rep)
        if found is None:
            continue
        img, (size, mode) = found
        sizes[size] += 1
        modes[mode] += 1
        if mode == "RGBA" and len(coverage) < 10:
            with Image.open(img) as im:
                coverage.append(float(np.asarray(im)[..., 3].mean() / 255))
    rep.problems += [
        f"{path}: file_path {fp!r} appears {k} times" for fp, k in seen.items() if k > 1
    ]
    if len(sizes) > 1:
        rep.problems.append(f"{path}: frames have different image sizes {dict(sizes)}")
    if "w" in meta and "h" in meta and sizes:
        declared = (int(meta["w"]), int(meta["h"]))
        if set(sizes) != {declared}:
            rep.problems.append(f"{path}: w/h say {declared} but images are {sorted(sizes)}")
    line = f"{split}: {len(frames)} frames"
    if sizes:
        W, H = sizes.most_common(1)[0][0]
        line += f", {W}x{H} {'/'.join(sorted(modes))}"
        if len(rep.problems) == n_before:
            cams = read_transforms(path)
            line += f", focal {cams.fx:.1f} px"
    if dist:
        line += f", camera distance {min(dist):.3f}-{max(dist):.3f}"
    if coverage:
        line += f", object covers {100 * np.mean(coverage):.0f}% of a view (alpha)"
    rep.summary.append(line)


# ------------------------------------------------------------------ csv image folders
def check_csv_folder(root: str | Path) -> CheckReport:
    root = Path(root)
    rep = CheckReport(root, "csv")
    csvs = sorted(root.glob("*.csv"))
    if not csvs:
        rep.problems.append(f"{root}: no *.csv files")
        return rep
    labels_of: dict[str, set[str]] = {}
    for c in csvs:
        labels_of[c.name] = _check_csv(c, rep)
    train = labels_of.get("train.csv")
    if train:
        for name, labs in labels_of.items():
            extra = sorted(labs - train)
            if name != "train.csv" and extra:
                rep.problems.append(
                    f"{root / name}: {len(extra)} label(s) not in train.csv, e.g. {extra[:3]}"
                )
    return rep


def _check_csv(path: Path, rep: CheckReport) -> set[str]:
    img_dir = path.with_suffix("") if path.with_suffix("").is_dir() else path.parent
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [c.strip() for c in (reader.fieldnames or [])]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        rep.problems.append(f"{path}: cannot read csv ({e})")
        return set()
    if "filename" not in fields:
        rep.problems.append(
            f"{path}: no 'filename' column (header is {fields}); the course "
            "layout is id,filename,label"
        )
        return set()
    if not rows:
        rep.problems.append(f"{path}: header but no rows")
        return set()
    labels: Counter = Counter()
    sizes, modes, names = [], Counter(), Counter()
    for i, r in enumerate(rows):
        fn = r.get("filename", "")
        if not fn:
            rep.problems.append(f"{path}: row {i + 2} has an empty filename")
            continue
        names[fn] += 1
        if r.get("label"):
            labels[r["label"]] += 1
        if not (img_dir / fn).is_file():
            rep.problems.append(f"{img_dir / fn}: image of {path.name} row {i + 2} is missing")
            continue
        got = _open(img_dir / fn)
        if isinstance(got, str):
            rep.problems.append(
                f"{img_dir / fn}: image of {path.name} row {i + 2} is unreadable ({got})"
            )
            continue
        sizes.append(got[0])
        modes[got[1]] += 1
    rep.problems += [f"{path}: filename {n!r} listed {k} times" for n, k in names.items() if k > 1]
    if "label" in fields and labels and sum(labels.values()) < len(rows):
        rep.problems.append(
            f"{path}: {len(rows) - sum(labels.values())} row(s) have an empty "
            "label while others have one"
        )
    line = f"{path.name}: {len(rows)} rows, images in {img_dir.name}/"
    if labels:
        per = labels.values()
        line += f", {len(labels)} classes ({min(per)}-{max(per)} a class)"
    else:
        line += ", unlabelled"
    if sizes:
        ws, hs = [s[0] for s in sizes], [s[1] for s in sizes]
        line += f", sizes {min(ws)}-{max(ws)} x {min(hs)}-{max(hs)}, modes " + ", ".join(
            f"{m}:{k}" for m, k in sorted(modes.items())
        )
    rep.summary.append(line)
    return set(labels)


# ------------------------------------------------------------------ dispatch
def check_path(path: str | Path) -> CheckReport:
    """Check a scene folder, a csv folder, or a course root holding hotdog/ mini/ office/."""
    path = Path(path)
    if not path.is_dir():
        raise UserError(
            f"{path}: folder not found (give a scene folder, a csv dataset folder "
            "or a course root with hotdog/, mini/, office/)"
        )
    if any((path / f"transforms_{s}.json").exists() for s in SPLITS):
        return check_scene(path)
    if any(path.glob("*.csv")):
        return check_csv_folder(path)
    parts = [
        p
        for p in sorted(path.iterdir())
        if p.is_dir()
        and not p.name.startswith(".")
        and (any(p.glob("*.csv")) or any(p.glob("transforms_*.json")))
    ]
    if not parts:
        raise UserError(
            f"{path}: holds no transforms_*.json, no *.csv and no sub-folder with "
            "either; is this the right folder?"
        )
    rep = CheckReport(path, "course")
    for p in parts:
        sub = check_path(p)
        rep.summary += [f"{p.name}/{s}" for s in sub.summary]
        rep.problems += sub.problems
    return rep
