"""The procedural image corpora: course csv layout, class design, file modes, determinism."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hw4lib.config import CorpusGen
from hw4lib.data import corpus as C
from hw4lib.data import drawing as D
from hw4lib.data.csvimages import CsvImageDataset

TINY = CorpusGen(mini_per_class=2, office_train_per_class=1, office_val_per_class=1, mini_size=20)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return C.generate_corpora(
        tmp_path_factory.mktemp("corpus") / "data", TINY, seed=0, progress=False
    )


def _rows(p: Path) -> list[dict]:
    with open(p, newline="") as f:
        r = csv.DictReader(f)
        assert r.fieldnames == ["id", "filename", "label"]
        return list(r)


def test_layout_and_counts(tiny):
    mini = _rows(tiny / "mini" / "train.csv")
    tr, va = _rows(tiny / "office" / "train.csv"), _rows(tiny / "office" / "val.csv")
    assert len(mini) == 64 * 2 and len(tr) == 65 and len(va) == 65
    assert len({r["label"] for r in mini}) == 64
    assert {r["label"] for r in tr} == {r["label"] for r in va} and len(
        {r["label"] for r in tr}
    ) == 65
    # mini and office classes are different classes
    assert not {r["label"] for r in mini} & {r["label"] for r in tr}
    for split, rows in (("mini/train", mini), ("office/train", tr), ("office/val", va)):
        assert [r["id"] for r in rows] == [str(i) for i in range(len(rows))]
        for r in rows:
            assert (tiny / split / r["filename"]).is_file()
    # every mini image is an 84-style fixed-size RGB JPEG (here mini_size=20)
    with Image.open(tiny / "mini" / "train" / mini[0]["filename"]) as im:
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == (20, 20)


def test_office_is_like_a_photo_set(tiny):
    modes, sizes = set(), set()
    for split in ("train", "val"):
        for r in _rows(tiny / "office" / f"{split}.csv"):
            with Image.open(tiny / "office" / split / r["filename"]) as im:
                modes.add(im.mode)
                sizes.add(im.size)
    assert {"RGB", "L", "P", "RGBA"} <= modes
    assert len(sizes) > 20
    # the same loader that reads the course data turns every file into RGB
    ds = CsvImageDataset(tiny / "office" / "train.csv", tiny / "office" / "train")
    assert all(ds[i][0].mode == "RGB" for i in range(len(ds)))
    assert len(ds.classes) == 65


def test_office_classes_are_new_combinations_of_mini_primitives():
    mini, office = C.class_specs(0)
    triple = lambda c: (c.shape, c.texture, c.colour)  # noqa: E731
    assert not {triple(c) for c in mini} & {triple(c) for c in office}
    for attr, values in (("shape", D.SHAPES), ("texture", D.TEXTURES), ("colour", D.COLOURS)):
        assert {getattr(c, attr) for c in mini} == set(values)
        assert {getattr(c, attr) for c in office} <= set(values)
    assert len({c.name for c in mini + office}) == 64 + 65


def test_deterministic(tiny, tmp_path):
    again = C.generate_corpora(tmp_path / "again", TINY, seed=0, progress=False)

    def digest(root: Path) -> str:
        h = hashlib.sha1()
        for f in sorted(p for p in root.rglob("*") if p.is_file()):
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
        return h.hexdigest()

    assert digest(tiny) == digest(again)
    other = C.class_specs(1)[0]
    assert [c.name for c in other] != [c.name for c in C.class_specs(0)[0]]


def test_shapes_are_what_they_claim():
    """Coverage of each shape's mask matches its closed-form area (object radius units)."""
    n = 801
    x, y = np.meshgrid(np.linspace(-1.2, 1.2, n), np.linspace(-1.2, 1.2, n))
    cell = (2.4 / (n - 1)) ** 2
    area = lambda s: float((D.shape_distance(s, x, y) < 0).sum() * cell)  # noqa: E731
    assert area("circle") == pytest.approx(np.pi * 0.8**2, rel=0.01)
    assert area("square") == pytest.approx(1.24**2, rel=0.01)
    assert area("ring") == pytest.approx(np.pi * (0.84**2 - 0.36**2), rel=0.01)
    assert area("bar") == pytest.approx(1.76 * 0.6, rel=0.01)
    assert area("cross") == pytest.approx(2 * 1.7 * 0.48 - 0.48**2, rel=0.01)
    # a triangle with apothem 0.45 has side 2*sqrt(3)*0.45
    side = 2 * np.sqrt(3) * 0.45
    assert area("triangle") == pytest.approx(np.sqrt(3) / 4 * side**2, rel=0.01)


def test_bad_settings(tmp_path):
    from hw4lib.errors import UserError

    with pytest.raises(UserError, match="mini_per_class"):
        C.generate_corpora(tmp_path / "x", CorpusGen(mini_per_class=0), progress=False)
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="not a directory"):
        C.generate_corpora(tmp_path / "file", TINY, progress=False)
