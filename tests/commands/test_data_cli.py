"""`hw4 data ...`: scene, images, prepare, import-folder, check; generated-data locations."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from hw4lib.cli import main
from hw4lib.config import get_profile
from hw4lib.data.blender import load_split
from hw4lib.data.csvimages import CsvImageDataset, read_csv
from hw4lib.data.generated import course_root, describe_source, images_dir, scene_dir
from hw4lib.data.importer import find_classes, stratified_split
from hw4lib.errors import UserError


def _tree(path: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    # progress bars may precede it (tqdm on stderr); the error itself is one line
    lines = [ln for ln in err.replace("\r", "\n").splitlines() if ln.startswith("error: ")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert err.rstrip().endswith(lines[0])
    return lines[0]


# ------------------------------------------------------------------ hw4 data scene
def test_scene_command_and_refusal(tmp_path, capsys):
    out = tmp_path / "scene"
    scene = ["data", "scene", "--out", str(out), "--size", "12", "--train", "2"]
    scene += ["--val", "1", "--test", "1"]
    assert main(scene) == 0
    assert len(load_split(out, "test").cameras) == 1
    before = _tree(out)
    # a previous output may be replaced ...
    assert main(scene) == 0
    assert _tree(out) == before  # deterministic
    # ... a foreign non-empty folder may not, and is left as it was
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "x.txt").write_text("x")
    capsys.readouterr()
    assert main(["data", "scene", "--out", str(foreign), "--size", "8"]) == 2
    assert "foreign" in _one_line_error(capsys)
    assert _tree(foreign) == {"x.txt": b"x"}
    assert main(["data", "scene", "--out", str(tmp_path / "z"), "--size", "0"]) == 2
    assert "size=0" in _one_line_error(capsys)
    assert not (tmp_path / "z").exists()


# ------------------------------------------------------------------ hw4 data check
def test_check_reports_every_problem(tmp_path, capsys):
    out = tmp_path / "scene"
    main(["data", "scene", "--out", str(out), "--size", "10", "--train", "3", "--val", "1"])
    capsys.readouterr()
    assert main(["data", "check", str(out)]) == 0
    o = capsys.readouterr().out
    assert "train: 3 frames, 10x10 RGBA" in o and "camera distance 4.031" in o and "ok:" in o
    (out / "train" / "r_1.png").unlink()
    (out / "train" / "r_2.png").write_bytes(b"broken")
    meta = json.loads((out / "transforms_val.json").read_text())
    meta["frames"][0]["transform_matrix"] = [[1, 0], [0, 1]]
    (out / "transforms_val.json").write_text(json.dumps(meta))
    assert main(["data", "check", str(out)]) == 2
    err = capsys.readouterr().err
    assert "r_1: frame 1 image not found" in err
    assert "r_2.png: cannot read image" in err
    assert "transforms_val.json: frame 0 transform_matrix is not a numeric 4x4" in err
    assert "3 problem(s)" in err


def test_check_csv_folder_problems(tmp_path, capsys):
    d = tmp_path / "office"
    (d / "train").mkdir(parents=True)
    (d / "val").mkdir()
    for name in ("a.jpg", "b.jpg"):
        Image.new("RGB", (6, 5)).save(d / "train" / name)
    Image.new("RGB", (6, 5)).save(d / "val" / "c.jpg")
    (d / "val" / "d.jpg").write_bytes(b"\xff\xd8 nope")
    (d / "train.csv").write_text("id,filename,label\n0,a.jpg,cat\n1,b.jpg,dog\n2,gone.jpg,dog\n")
    (d / "val.csv").write_text("id,filename,label\n0,c.jpg,cow\n1,d.jpg,cat\n")
    (d / "test.csv").write_text("id,file\n0,c.jpg\n")
    assert main(["data", "check", str(d)]) == 2
    cap = capsys.readouterr()
    assert "gone.jpg: image of train.csv row 4 is missing" in cap.err
    assert "d.jpg: image of val.csv row 3 is unreadable" in cap.err
    assert "val.csv: 1 label(s) not in train.csv, e.g. ['cow']" in cap.err
    assert "test.csv: no 'filename' column" in cap.err
    assert "train.csv: 3 rows" in cap.out and "2 classes" in cap.out
    assert main(["data", "check", str(tmp_path / "nowhere")]) == 2
    assert "folder not found" in _one_line_error(capsys)


# ------------------------------------------------------------------ hw4 data import-folder
def _class_tree(root: Path, counts: dict[str, int], size=(7, 5)) -> Path:
    for name, n in counts.items():
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("RGB", size, (i * 10 % 256, 0, 0)).save(root / name / f"img{i:03d}.jpg")
    return root


def test_import_class_folders(tmp_path, capsys):
    src = _class_tree(tmp_path / "src", {"Fan": 10, "Couch": 4, "Alarm_Clock": 1})
    out = tmp_path / "data" / "office"
    assert (
        main(["data", "import-folder", str(src), "--out", str(out), "--val-fraction", "0.2"]) == 0
    )
    train = read_csv(out / "train.csv", out / "train", require_label=True)
    val = read_csv(out / "val.csv", out / "val", require_label=True)
    per = lambda rows, c: sum(r.label == c for r in rows)  # noqa: E731
    # stratified: 20% of each class in val (at least one when a class has 2+), one stays in train
    assert (per(val, "Fan"), per(val, "Couch"), per(val, "Alarm_Clock")) == (2, 1, 0)
    assert (per(train, "Fan"), per(train, "Couch"), per(train, "Alarm_Clock")) == (8, 3, 1)
    assert len({r.filename for r in train + val}) == 15
    assert all(r.filename.startswith(r.label + "_") for r in train + val)
    assert [r.id for r in train] == [str(i) for i in range(12)]
    ds = CsvImageDataset(
        out / "val.csv",
        out / "val",
        classes=CsvImageDataset(out / "train.csv", out / "train").classes,
    )
    assert ds[0][0].size == (7, 5)
    capsys.readouterr()
    assert main(["data", "check", str(out)]) == 0
    # deterministic and re-runnable onto its own output; the seed changes the split
    first = _tree(out)
    assert (
        main(["data", "import-folder", str(src), "--out", str(out), "--val-fraction", "0.2"]) == 0
    )
    assert _tree(out) == first
    assert (
        main(
            [
                "data",
                "import-folder",
                str(src),
                "--out",
                str(tmp_path / "o2"),
                "--val-fraction",
                "0.2",
                "--seed",
                "5",
            ]
        )
        == 0
    )
    assert (tmp_path / "o2" / "val.csv").read_text() != (out / "val.csv").read_text() or _tree(
        tmp_path / "o2"
    ) != first


def test_import_domain_tree(tmp_path):
    src = tmp_path / "OfficeHome"
    _class_tree(src / "Art", {"Fan": 3, "Couch": 2})
    _class_tree(src / "Real World", {"Fan": 4, "Couch": 3})
    merged = find_classes(src)
    assert {k: len(v) for k, v in merged.items()} == {"Fan": 7, "Couch": 5}
    real = find_classes(src, "Real World")
    assert {k: len(v) for k, v in real.items()} == {"Fan": 4, "Couch": 3}
    with pytest.raises(UserError, match="no domain folder 'Clipart'"):
        find_classes(src, "Clipart")
    tr, va = stratified_split(real, 0.25, seed=0)
    tr2, va2 = stratified_split(real, 0.25, seed=0)
    assert (tr, va) == (tr2, va2) and len(va) == 2 and len(tr) == 5
    assert not {f for f, _ in tr} & {f for f, _ in va}


def test_import_bad_input(tmp_path, capsys):
    src = _class_tree(tmp_path / "src", {"Fan": 3})
    (src / "Fan" / "img001.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "office"
    assert main(["data", "import-folder", str(src), "--out", str(out)]) == 2
    assert "img001.jpg: cannot read image" in _one_line_error(capsys)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["src"]
    assert main(["data", "import-folder", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "source folder not found" in _one_line_error(capsys)
    empty = tmp_path / "empty"
    (empty / "cls").mkdir(parents=True)
    assert main(["data", "import-folder", str(empty), "--out", str(out)]) == 2
    assert "no class folders with images" in _one_line_error(capsys)
    good = _class_tree(tmp_path / "good", {"A": 2})
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep")
    assert main(["data", "import-folder", str(good), "--out", str(taken)]) == 2
    assert "taken" in _one_line_error(capsys)
    assert _tree(taken) == {"mine.txt": b"keep"}
    assert main(["data", "import-folder", str(good), "--out", str(out), "--val-fraction", "1"]) == 2
    assert "--val-fraction 1.0" in _one_line_error(capsys)


# ------------------------------------------------------------------ generated data
def test_images_command_and_generated_locations(tmp_path, monkeypatch, capsys):
    out = tmp_path / "imgs"
    assert main(["data", "images", "--out", str(out), "--profile", "smoke"]) == 0
    for part, split in (("mini", "train"), ("office", "train"), ("office", "val")):
        rows = read_csv(out / part / f"{split}.csv", out / part / split, require_label=True)
        assert rows
    with (out / "office" / "train.csv").open() as f:
        assert next(csv.reader(f)) == ["id", "filename", "label"]
    # with a scene beside them this is a whole course root, and check walks all of it
    main(
        ["data", "scene", "--out", str(out / "hotdog"), "--size", "8", "--train", "1", "--val", "1"]
    )
    capsys.readouterr()
    assert main(["data", "check", str(out)]) == 0
    o = capsys.readouterr().out
    cg = get_profile("smoke").corpus
    for line in (
        "hotdog/train: 1 frames",
        f"mini/train.csv: {64 * cg.mini_per_class} rows",
        f"office/val.csv: {65 * cg.office_val_per_class} rows",
        "65 classes",
        "ok: ",
    ):
        assert line in o
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "a").write_text("a")
    capsys.readouterr()
    assert main(["data", "images", "--out", str(foreign), "--profile", "smoke"]) == 2
    _one_line_error(capsys)

    gen = tmp_path / "gen"
    monkeypatch.setenv("HW4_GENERATED", str(gen))
    d = images_dir("smoke", progress=False)
    assert d == gen / "smoke" and (d / "mini" / "train.csv").is_file()
    stamp = (d / "office" / "val.csv").stat().st_mtime_ns
    assert images_dir("smoke", progress=False) == d  # complete: not regenerated
    assert (d / "office" / "val.csv").stat().st_mtime_ns == stamp
    # an incomplete part (marker gone, e.g. an interrupted older run) is regenerated
    (d / "office" / ".hw4-images.json").unlink()
    images_dir("smoke", progress=False)
    assert (d / "office" / ".hw4-images.json").is_file()
    assert [p.name for p in d.iterdir() if p.name.startswith(".")] == []

    s = scene_dir("smoke", "hotdog", progress=False)
    assert s == gen / "smoke" / "hotdog"
    split = load_split(s, "train")
    assert split.images.shape[:3] == (8, 32, 32)  # the smoke profile's SceneGen
    assert describe_source(s) == "generated:smoke/hotdog"


def test_course_root_choice(tmp_path, monkeypatch, capsys):
    gen = tmp_path / "gen"
    monkeypatch.setenv("HW4_GENERATED", str(gen))
    monkeypatch.delenv("HW4_DATA", raising=False)
    user = tmp_path / "hw4_data"
    main(
        [
            "data",
            "scene",
            "--out",
            str(user / "hotdog"),
            "--size",
            "8",
            "--train",
            "1",
            "--val",
            "1",
        ]
    )
    assert course_root(str(user), "smoke", need=("hotdog",)) == user
    with pytest.raises(UserError, match="lacks mini"):
        course_root(str(user), "smoke", need=("hotdog", "mini"))
    with pytest.raises(UserError, match="not found"):
        course_root(str(tmp_path / "nope"), "smoke")
    monkeypatch.setenv("HW4_DATA", str(user))
    assert course_root(None, "smoke", need=("hotdog",)) == user
    monkeypatch.delenv("HW4_DATA")
    # nothing given and no data/hw4_data: the generated folder, made on demand
    monkeypatch.setattr("hw4lib.data.generated.data_root", lambda: tmp_path / "absent")
    root = course_root("", "smoke", need=("hotdog",), progress=False)
    assert root == gen / "smoke" and (root / "hotdog" / "transforms_val.json").is_file()


def test_prepare_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HW4_GENERATED", str(tmp_path / "gen"))
    assert main(["data", "prepare", "--profile", "smoke", "--only", "ficus"]) == 0
    assert "ficus: " in capsys.readouterr().out
    assert load_split(tmp_path / "gen" / "smoke" / "ficus", "val").images.shape[0] == 4
    assert main(["data", "prepare", "--profile", "smoke", "--only", "teapot"]) == 2
    assert "unknown part" in _one_line_error(capsys)
    assert main(["data", "prepare", "--profile", "nope"]) == 2
    _one_line_error(capsys)


def test_prepare_makes_parts_side_by_side(tmp_path, monkeypatch):
    from hw4lib.data.generated import IMAGES_MARKER, prepare_generated

    monkeypatch.setenv("HW4_GENERATED", str(tmp_path / "gen"))  # inherited by the workers
    paths = prepare_generated("smoke", ("hotdog", "images"), workers=2)
    root = tmp_path / "gen" / "smoke"
    assert paths == {"hotdog": root / "hotdog", "images": root}
    assert load_split(root / "hotdog", "train").images.shape[0] == 8
    assert json.loads((root / "mini" / IMAGES_MARKER).read_text())["mini_per_class"] == 2
    assert (root / "office" / "val.csv").is_file()
    assert sorted(p.name for p in root.iterdir()) == ["hotdog", "mini", "office"]  # no leftovers


def test_stale_generated_scene_is_regenerated(tmp_path, monkeypatch):
    monkeypatch.setenv("HW4_GENERATED", str(tmp_path / "gen"))
    s = scene_dir("smoke", "hotdog", progress=False)
    marker = s / ".hw4-scene.json"
    meta = json.loads(marker.read_text())
    meta["size"] = 16  # as if made by an older profile setting
    marker.write_text(json.dumps(meta))
    (s / "train" / "r_0.png").write_bytes(b"stale")
    scene_dir("smoke", "hotdog", progress=False)
    assert json.loads(marker.read_text())["size"] == 32
    assert load_split(s, "train").images.shape[1] == 32
