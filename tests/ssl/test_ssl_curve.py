"""Judging a recipe on several sets: data variants, backbone snapshots, the budget curve."""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from hw4lib.config import CorpusGen, get_profile
from hw4lib.data.corpus import generate_corpora
from hw4lib.data.csvimages import read_csv
from hw4lib.data.variants import cut_mini, heldout_office, photos_office, resplit_office
from hw4lib.errors import UserError
from hw4lib.ssl.curve import merge_rows, summarize
from hw4lib.ssl.pretrain import snapshot_path
from hw4lib.ssl.pretrain_run import pretrain_run
from hw4lib.ssl.request import PretrainRequest


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return generate_corpora(
        tmp_path_factory.mktemp("curve") / "data",
        CorpusGen(mini_per_class=3, office_train_per_class=2, office_val_per_class=2, mini_size=16),
        progress=False,
    )


def _labels(csv_path: Path) -> Counter:
    return Counter(r.label for r in read_csv(csv_path, csv_path.parent / csv_path.stem))


def test_cut_mini_keeps_n_a_class_and_links_office(data, tmp_path):
    out = cut_mini(data, tmp_path / "cut", per_class=2, seed=0)
    full, cut = _labels(data / "mini" / "train.csv"), _labels(out / "mini" / "train.csv")
    assert set(cut) == set(full) and set(cut.values()) == {2}
    assert (out / "office").resolve() == (data / "office").resolve()
    # another seed draws other images; the same seed the same ones
    names = lambda d: {r.filename for r in read_csv(d / "mini" / "train.csv")}  # noqa: E731
    assert names(cut_mini(data, tmp_path / "again", 2, seed=0)) == names(out)
    assert names(cut_mini(data, tmp_path / "other", 2, seed=1)) != names(out)
    with pytest.raises(UserError, match="fewer than the 4 asked"):
        cut_mini(data, tmp_path / "big", per_class=4)


def test_photos_downstream_is_drawn_from_mini_with_office_counts(data, tmp_path):
    with pytest.raises(UserError, match="0 classes have the 4 images a class asked"):
        photos_office(data, tmp_path / "few", 2)  # office: 2 + 2 a class, mini: 3
    base = generate_corpora(
        tmp_path / "base",
        CorpusGen(mini_per_class=5, office_train_per_class=3, office_val_per_class=1, mini_size=16),
        progress=False,
    )
    out = photos_office(base, tmp_path / "photos", 2, seed=0)
    train, val = (_labels(out / "office" / f"{s}.csv") for s in ("train", "val"))
    assert len(train) == 2 and set(train) == set(val) <= set(_labels(base / "mini" / "train.csv"))
    assert set(train.values()) == {3} and set(val.values()) == {1}
    mini = {r.filename for r in read_csv(base / "mini" / "train.csv")}
    for split in ("train", "val"):
        rows = read_csv(out / "office" / f"{split}.csv", out / "office" / split)
        assert {r.filename for r in rows} <= mini  # mini's own photos, none twice
    names = {
        r.filename
        for s in ("train", "val")
        for r in read_csv(out / "office" / f"{s}.csv", out / "office" / s)
    }
    assert len(names) == 8
    assert (out / "mini").resolve() == (base / "mini").resolve()


def test_heldout_downstream_is_photos_downstream_without_its_classes_in_mini(tmp_path):
    base = generate_corpora(
        tmp_path / "base",
        CorpusGen(mini_per_class=5, office_train_per_class=3, office_val_per_class=1, mini_size=16),
        progress=False,
    )
    held = heldout_office(base, tmp_path / "held", 2, seed=0)
    photos = photos_office(base, tmp_path / "photos", 2, seed=0)
    for split in ("train", "val"):
        assert (held / "office" / f"{split}.csv").read_bytes() == (
            photos / "office" / f"{split}.csv"
        ).read_bytes()
    classes = set(_labels(held / "office" / "train.csv"))
    full, kept = _labels(base / "mini" / "train.csv"), _labels(held / "mini" / "train.csv")
    assert len(classes) == 2 and kept == Counter(
        {c: n for c, n in full.items() if c not in classes}
    )
    # the pre-training corpus's rows point at images that are there
    for r in read_csv(held / "mini" / "train.csv", held / "mini" / "train"):
        assert (held / "mini" / "train" / r.filename).is_file()


def test_resplit_keeps_counts_and_images_but_moves_them(data, tmp_path):
    out = resplit_office(data, tmp_path / "re", seed=5)
    for split in ("train", "val"):
        assert _labels(out / "office" / f"{split}.csv") == _labels(data / "office" / f"{split}.csv")

    def contents(root: Path, split: str) -> set[bytes]:
        rows = read_csv(root / "office" / f"{split}.csv", root / "office" / split)
        return {(root / "office" / split / r.filename).read_bytes() for r in rows}

    before = contents(data, "train") | contents(data, "val")
    after_train, after_val = contents(out, "train"), contents(out, "val")
    assert after_train | after_val == before and not after_train & after_val
    assert after_train != contents(data, "train")  # seed 5 moved at least one image
    with open(out / "office" / "val.csv") as f:
        assert next(csv.reader(f)) == ["id", "filename", "label"]


def test_snapshot_is_the_backbone_of_the_shorter_run(data, tmp_path):
    """A snapshot at step 2 of a 4-step run equals the final backbone of a 2-step run."""
    cfg = replace(
        get_profile("smoke").ssl,
        image_size=16,
        pretrain_batch=8,
        byol_hidden=32,
        byol_projection=16,
        knn_evals=0,
        cache_images=True,
        workers=0,
        checkpoint_every_s=1e9,
    )

    def byol(out: str, **kw) -> dict:
        req = PretrainRequest("byol", data=data, out=tmp_path / out, device="cpu", **kw)
        return pretrain_run(req, cfg=cfg, progress=False)

    long = byol("long", steps=4, snapshots=(2,))
    short = byol("short", steps=2)
    assert long["settings"]["snapshots"] == [2] and "snapshots" not in short["settings"]
    snap = torch.load(snapshot_path(tmp_path / "long", 2), weights_only=True)["backbone"]
    end2 = torch.load(tmp_path / "short" / "backbone.pt", weights_only=True)["backbone"]
    end4 = torch.load(tmp_path / "long" / "backbone.pt", weights_only=True)["backbone"]
    assert all(torch.equal(snap[k], end2[k]) for k in snap)
    assert any(not torch.equal(snap[k], end4[k]) for k in snap if snap[k].is_floating_point())
    with pytest.raises(UserError, match="between 1 and 3"):
        byol("bad", steps=4, snapshots=(4,))
    # the folder is the run's own (reused as it is); started afresh, old snapshots go
    again = byol("long", steps=4, snapshots=(2,))
    assert again["seconds"] == long["seconds"]  # read back, not trained again
    byol("long", steps=4, snapshots=(3,), force=True)
    assert sorted(p.name for p in (tmp_path / "long").glob("backbone_step*")) == [
        "backbone_step3.pt"
    ]


def test_summary_by_hand():
    rows = [
        {"seed": 0, "byol_steps": 10, "byol_minutes": 1.0, "A": 0.5, "C": 0.6, "E": 0.4},
        {"seed": 1, "byol_steps": 10, "byol_minutes": 1.2, "A": 0.5, "C": 0.4, "E": 0.7},
    ]
    (s,) = summarize(rows)
    assert s["byol_minutes"] == 1.1 and s["seeds"] == 2
    assert s["C"] == pytest.approx(0.5) and s["C_sd"] == pytest.approx(0.1414, abs=1e-4)
    assert s["C>A"] == 1 and s["E>A"] == 1 and s["A_sd"] == 0


def test_merge_adds_the_missing_points_and_refuses_two_curves():
    def row(seed, steps, c):
        return {"seed": seed, "byol_steps": steps, "byol_minutes": 0.1, "A": 0.5, "C": c, "E": 0.4}

    longer = [row(0, 1000, 0.6), row(0, 4500, 0.7)]
    earlier = [row(0, 150, 0.55), row(0, 1000, 0.6)]
    merged = merge_rows(longer, earlier)
    assert [(r["byol_steps"], r["C"]) for r in merged] == [(150, 0.55), (1000, 0.6), (4500, 0.7)]
    with pytest.raises(UserError, match="seed 0 at 1000 BYOL steps: .* not one curve"):
        merge_rows(longer, [row(0, 1000, 0.61)])
