"""What data and scale a figure or table shows, in words built from the profile and data root.

Every figure and table of the report names its data with one of these descriptions (e.g.
"generated hotdog, 100 px, 10 val views, 1300 fine steps"); the notebooks record the ones they
used in ``data.json`` beside the figures, so that ``figures/README.md`` says the same.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from ..atomic import atomic_write_text
from ..config import Profile
from ..data.generated import describe_source

#: the file in a figures folder holding {problem: description} of the data its items show
DATA_FILE = "data.json"
#: the generated office corpus's class count (hw4lib.data.corpus: 65, as Office-Home)
GENERATED_OFFICE_CLASSES = 65


def is_generated(path: str | Path) -> bool:
    return describe_source(path).startswith("generated:")


def _arch(name: str) -> str:
    # "resnet10" -> "ResNet10": the name as papers write it
    return "ResNet" + name[len("resnet") :] if name.startswith("resnet") else name


def _image_side(scene: Path) -> int | None:
    """The long side of the scene's first val image (real data: read, not assumed)."""
    try:
        frames = json.loads((scene / "transforms_val.json").read_text())["frames"]
        from PIL import Image

        with Image.open(scene / (frames[0]["file_path"] + ".png")) as im:
            return max(im.size)
    except (OSError, KeyError, IndexError, ValueError):
        return None


def _val_views(scene: Path) -> int | None:
    try:
        return len(json.loads((scene / "transforms_val.json").read_text())["frames"])
    except (OSError, KeyError, ValueError):
        return None


def scene_name(scene: str | Path) -> str:
    """``generated hotdog`` for generated data, else ``<data folder>/hotdog``."""
    scene = Path(scene)
    return f"generated {scene.name}" if is_generated(scene) else f"{scene.parent.name}/{scene.name}"


def nerf_data(cfg: Profile, scene: str | Path) -> str:
    """The DVGO runs' data: scene, image size, val views scored, fine-stage steps."""
    scene = Path(scene)
    n = cfg.nerf
    what = scene_name(scene)
    if is_generated(scene):
        side, views = cfg.scene.size, cfg.scene.n_val
    else:
        side, views = _image_side(scene), _val_views(scene)
    scored = min(n.eval_views, views) if n.eval_views and views else (n.eval_views or views)
    train = min(n.max_train_size, side) if n.max_train_size and side else n.max_train_size or side
    if side is None:
        size = f"trained at {train} px" if train else "full-size images"
    elif train == side:
        size = f"{side} px"
    else:
        size = f"trained at {train} px, scored at {side} px"
    return f"{what}, {size}, {scored} val views, {n.fine.iters} fine steps"


def _csv_counts(path: Path) -> tuple[int, int] | None:
    """(classes, images) of a course-layout csv (columns id, filename, label)."""
    try:
        with open(path, newline="") as f:
            labels = [r["label"] for r in csv.DictReader(f)]
    except (OSError, KeyError):
        return None
    return len(set(labels)), len(labels)


def ssl_data(cfg: Profile, root: str | Path) -> str:
    """The A-E fine-tuning data (the office part) and the backbone's scale."""
    root = Path(root)
    scale = f"{_arch(cfg.ssl.backbone)} at {cfg.ssl.image_size} px"
    if is_generated(root):
        c = cfg.corpus
        return (
            f"generated office corpus, {GENERATED_OFFICE_CLASSES} classes x "
            f"{c.office_train_per_class} train / {c.office_val_per_class} val, {scale}"
        )
    return ", ".join(x for x in (f"{root.name}/office", _office_counts(root), scale) if x)


def _office_counts(root: Path) -> str | None:
    """``N classes, T train / V val images`` of a real ``office`` part, as its csvs say."""
    train = _csv_counts(root / "office" / "train.csv")
    val = _csv_counts(root / "office" / "val.csv")
    return f"{train[0]} classes, {train[1]} train / {val[1]} val images" if train and val else None


def ssl_curve_data(cfg: Profile, root: str | Path, about: str = "") -> str:
    """A budget curve's data (``tools/ssl_variants.py``): what the set is (``about``), the
    pre-training corpus and the fine-tuning images as counted, the backbone's scale and the
    fine-tuning lr."""
    root = Path(root)
    mini = _csv_counts(root / "mini" / "train.csv")
    pre = f"BYOL on {mini[1]} images ({mini[0]} classes)" if mini else "BYOL on mini"
    scale = f"{_arch(cfg.ssl.backbone)} at {cfg.ssl.image_size} px"
    scale += f", fine-tuning lr {cfg.ssl.finetune_lr:g}"
    office = ", ".join(x for x in (_office_counts(root), scale) if x)
    return f"{about + ': ' if about else ''}{pre} -> {office}"


def record(fig_dir: Path, problem: str, text: str) -> str:
    """Note in ``fig_dir/data.json`` that the items of ``problem`` ("nerf", "ssl") show
    ``text``; returns ``text`` (so a notebook names and records it in one call)."""
    path = Path(fig_dir) / DATA_FILE
    data = recorded(fig_dir)
    data[problem] = text
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")
    return text


def recorded(fig_dir: Path) -> dict[str, str]:
    """``{problem: description}`` recorded in ``fig_dir`` (empty when none)."""
    try:
        return dict(json.loads((Path(fig_dir) / DATA_FILE).read_text()))
    except (OSError, ValueError):
        return {}
