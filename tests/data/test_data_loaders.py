"""Loaders for the course's formats: a fixture in the exact course layout, features, bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from hw4lib.data.blender import load_split, over_background, read_transforms, target_size
from hw4lib.data.csvimages import CsvImageDataset, classes_of, load_rgb, read_csv
from hw4lib.errors import UserError

ANGLE = 0.6911112070083618


def _pose(t=(0.0, -4.0, 1.0)) -> list[list[float]]:
    m = np.eye(4)
    m[:3, 3] = t
    return m.tolist()


def _write_scene(
    root, n=2, size=8, ext="", mode="RGBA", split="train", meta_extra=None, frames=None
):
    (root / split).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    fr = []
    for i in range(n):
        ch = 4 if mode == "RGBA" else 3
        arr = rng.integers(0, 256, (size, size, ch), dtype=np.uint8)
        Image.fromarray(arr, mode).save(root / split / f"r_{i}.png")
        fr.append(
            {"file_path": f"./{split}/r_{i}{ext}", "rotation": 0.0, "transform_matrix": _pose()}
        )
    meta = {"camera_angle_x": ANGLE, "frames": frames if frames is not None else fr}
    meta.update(meta_extra or {})
    (root / f"transforms_{split}.json").write_text(json.dumps(meta))
    return root


@pytest.fixture
def course(tmp_path):
    """A tiny copy of the course's hw4_data layout: hotdog/, mini/, office/."""
    root = tmp_path / "hw4_data"
    _write_scene(root / "hotdog", n=3, size=8, split="train")
    _write_scene(root / "hotdog", n=2, size=8, split="val")
    rng = np.random.default_rng(1)
    for part, split, labels in (
        ("mini", "train", ["n01", "n01", "n02"]),
        ("office", "train", ["Couch", "Fan", "Fan"]),
        ("office", "val", ["Fan", "Couch"]),
    ):
        d = root / part / split
        d.mkdir(parents=True)
        lines = ["id,filename,label"]
        for i, lab in enumerate(labels):
            name = f"{i}.jpg" if part == "mini" else f"{lab}_{i:05d}.jpg"
            Image.fromarray(rng.integers(0, 256, (10 + i, 12, 3), dtype=np.uint8)).save(d / name)
            lines.append(f"{i},{name},{lab}")
        (root / part / f"{split}.csv").write_text("\n".join(lines) + "\n")
    return root


# ------------------------------------------------------------------ the course layout loads
def test_course_layout_loads(course):
    s = load_split(course / "hotdog", "train")
    assert s.images.shape == (3, 8, 8, 4) and s.images.dtype == torch.uint8
    assert s.cameras.names == ["r_0", "r_1", "r_2"]
    assert s.cameras.fx == pytest.approx(0.5 * 8 / math.tan(0.5 * ANGLE))
    assert len(load_split(course / "hotdog", "val").cameras) == 2
    ds = CsvImageDataset(course / "office" / "train.csv", course / "office" / "train")
    assert ds.classes == ["Couch", "Fan"] and len(ds) == 3
    img, y = ds[1]
    assert img.mode == "RGB" and y == 1
    val = CsvImageDataset(
        course / "office" / "val.csv", course / "office" / "val", classes=ds.classes
    )
    assert [val.label_index(i) for i in range(2)] == [1, 0]
    assert classes_of(read_csv(course / "mini" / "train.csv")) == ["n01", "n02"]


def test_file_path_with_or_without_extension_is_the_same(tmp_path):
    a = load_split(_write_scene(tmp_path / "a", ext=""), "train")
    b = load_split(_write_scene(tmp_path / "b", ext=".png"), "train")
    assert torch.equal(a.images, b.images)
    assert a.cameras.names == b.cameras.names == ["r_0", "r_1"]


def test_dotted_name_without_extension(tmp_path):
    root = tmp_path / "s"
    (root / "train").mkdir(parents=True)
    Image.new("RGB", (4, 4), (10, 20, 30)).save(root / "train" / "frame.001.png")
    (root / "transforms_train.json").write_text(
        json.dumps(
            {
                "camera_angle_x": ANGLE,
                "frames": [{"file_path": "./train/frame.001", "transform_matrix": _pose()}],
            }
        )
    )
    s = load_split(root, "train")
    assert s.images[0, 0, 0].tolist() == [10, 20, 30]


def test_rgba_composite_on_white_and_black(tmp_path):
    root = tmp_path / "s"
    (root / "train").mkdir(parents=True)
    px = np.array(
        [[[200, 100, 0, 255], [200, 100, 0, 0]], [[200, 100, 0, 51], [0, 0, 0, 0]]], np.uint8
    )
    Image.fromarray(px, "RGBA").save(root / "train" / "r_0.png")
    (root / "transforms_train.json").write_text(
        json.dumps(
            {
                "camera_angle_x": ANGLE,
                "frames": [{"file_path": "./train/r_0", "transform_matrix": _pose()}],
            }
        )
    )
    s = load_split(root)
    white, black = s.rgb("white")[0].numpy(), s.rgb("black")[0].numpy()
    np.testing.assert_allclose(white[0, 0], [200 / 255, 100 / 255, 0])
    np.testing.assert_allclose(white[0, 1], [1, 1, 1])
    np.testing.assert_allclose(black[0, 1], [0, 0, 0])
    a = 51 / 255  # rgb * a + bg * (1 - a)
    np.testing.assert_allclose(
        white[1, 0], [200 / 255 * a + 1 - a, 100 / 255 * a + 1 - a, 1 - a], rtol=1e-6
    )
    np.testing.assert_allclose(black[1, 0], [200 / 255 * a, 100 / 255 * a, 0], rtol=1e-6)
    np.testing.assert_allclose(s.rgb(0.5)[0, 0, 1].numpy(), [0.5] * 3)
    with pytest.raises(UserError, match="background 'grey'"):
        s.rgb("grey")


def test_rgb_images_pass_through(tmp_path):
    s = load_split(_write_scene(tmp_path / "s", mode="RGB"))
    assert s.images.shape[-1] == 3
    np.testing.assert_allclose(s.rgb("white").numpy(), s.images.numpy() / 255.0, rtol=1e-6)
    np.testing.assert_allclose(
        over_background(s.images, 0.0).numpy(), s.images.numpy() / 255.0, rtol=1e-6
    )


def test_per_file_intrinsics(tmp_path):
    root = _write_scene(
        tmp_path / "s",
        size=8,
        meta_extra={"fl_x": 11.0, "fl_y": 12.0, "cx": 3.5, "cy": 4.5, "w": 8, "h": 8},
    )
    cams = read_transforms(root / "transforms_train.json")
    assert (cams.fx, cams.fy, cams.cx, cams.cy, cams.W, cams.H) == (11.0, 12.0, 3.5, 4.5, 8, 8)
    half = load_split(root, downscale=2).cameras
    assert (half.fx, half.fy, half.cx, half.cy, half.W, half.H) == (5.5, 6.0, 1.75, 2.25, 4, 4)


def test_downscale_and_max_size(tmp_path):
    root = _write_scene(tmp_path / "s", size=8)
    assert load_split(root, downscale=2).images.shape == (2, 4, 4, 4)
    assert load_split(root, max_size=2).images.shape == (2, 2, 2, 4)
    assert target_size(800, 800, 1, 100) == (100, 100)
    assert target_size(600, 800, 2, None) == (300, 400)
    assert target_size(600, 800, 1, 400) == (300, 400)
    with pytest.raises(UserError, match="downscale"):
        load_split(root, downscale=0)


def test_downscale_averages_premultiplied_colour(tmp_path):
    # one opaque red pixel among three transparent black ones -> alpha 1/4, colour still red
    root = tmp_path / "s"
    (root / "train").mkdir(parents=True)
    px = np.zeros((2, 2, 4), np.uint8)
    px[0, 0] = (255, 0, 0, 255)
    Image.fromarray(px, "RGBA").save(root / "train" / "r_0.png")
    (root / "transforms_train.json").write_text(
        json.dumps(
            {
                "camera_angle_x": ANGLE,
                "frames": [{"file_path": "./train/r_0", "transform_matrix": _pose()}],
            }
        )
    )
    s = load_split(root, downscale=2)
    r, g, b, a = s.images[0, 0, 0].tolist()
    assert abs(a - 64) <= 1 and r >= 250 and g == b == 0
    np.testing.assert_allclose(s.rgb("white")[0, 0, 0].numpy(), [1.0, 0.75, 0.75], atol=0.01)


def test_mixed_rgb_and_rgba_frames_are_promoted(tmp_path):
    root = _write_scene(tmp_path / "s", n=2, mode="RGBA")
    Image.new("RGB", (8, 8), (1, 2, 3)).save(root / "train" / "r_1.png")
    s = load_split(root)
    assert s.images.shape == (2, 8, 8, 4)
    assert s.images[1, 0, 0].tolist() == [1, 2, 3, 255]


def test_csv_label_optional_bom_and_any_image_mode(tmp_path):
    d = tmp_path / "test"
    d.mkdir()
    Image.new("L", (5, 4), 77).save(d / "a.png")
    Image.new("P", (5, 4)).save(d / "b.png")
    Image.new("RGBA", (5, 4), (255, 0, 0, 0)).save(d / "c.png")
    (tmp_path / "test.csv").write_text(
        "\ufeffid,filename,label\n0,a.png,\n1,b.png,\n2,c.png,\n", encoding="utf-8"
    )
    ds = CsvImageDataset(tmp_path / "test.csv", d)
    assert ds.classes == [] and [ds[i][1] for i in range(3)] == [-1, -1, -1]
    assert ds[0][0].getpixel((0, 0)) == (77, 77, 77)
    assert ds[2][0].getpixel((0, 0)) == (255, 255, 255)  # transparent -> white
    (tmp_path / "nolabel.csv").write_text("filename\na.png\n")
    assert read_csv(tmp_path / "nolabel.csv", d)[0].label is None


# ------------------------------------------------------------------ bad input: blender
def _meta(frames=None, **kw):
    m = {
        "camera_angle_x": ANGLE,
        "frames": frames
        if frames is not None
        else [{"file_path": "./train/r_0", "transform_matrix": _pose()}],
    }
    m.update(kw)
    return m


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "top level must be a JSON object"),
        (json.dumps({"camera_angle_x": ANGLE}), "missing key 'frames'"),
        (json.dumps(_meta(frames=[])), "'frames' is empty"),
        (json.dumps(_meta(frames=[{"file_path": "./train/r_0"}])), "needs keys"),
        (
            json.dumps(
                _meta(frames=[{"file_path": "./train/r_0", "transform_matrix": np.eye(3).tolist()}])
            ),
            r"shape \(3, 3\)",
        ),
        (
            json.dumps(
                _meta(frames=[{"file_path": "./train/r_0", "transform_matrix": [[1, 2], [3]]}])
            ),
            "not a numeric 4x4",
        ),
        (
            json.dumps(
                _meta(
                    frames=[
                        {"file_path": "./train/r_0", "transform_matrix": [[float("nan")] * 4] * 4}
                    ]
                )
            ).replace("NaN", "NaN"),
            "NaN",
        ),
        (json.dumps({"frames": _meta()["frames"]}), "missing key 'camera_angle_x'"),
        (json.dumps(_meta(camera_angle_x="wide")), "intrinsics are not numbers"),
        (json.dumps(_meta(camera_angle_x=0.0)), r"camera_angle_x 0.0 must be in"),
        (json.dumps(_meta(fl_x=-3.0)), "focal length"),
    ],
)
def test_bad_transforms(tmp_path, content, message):
    root = _write_scene(tmp_path / "s", n=1)
    f = root / "transforms_train.json"
    f.write_text(content)
    with pytest.raises(UserError, match=message) as e:
        load_split(root, "train")
    assert str(f) in str(e.value) and "\n" not in str(e.value)


def test_missing_transforms_and_folder(tmp_path):
    with pytest.raises(UserError, match="transforms_val.json"):
        load_split(_write_scene(tmp_path / "s"), "val")
    with pytest.raises(UserError, match="scene directory not found"):
        load_split(tmp_path / "nope")


def test_missing_unreadable_and_wrong_size_images(tmp_path):
    root = _write_scene(tmp_path / "s", n=3)
    (root / "train" / "r_2.png").unlink()
    with pytest.raises(UserError, match=r"r_2.png: frame image not found"):
        load_split(root)
    root = _write_scene(tmp_path / "t", n=3)
    (root / "train" / "r_1.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(UserError, match=r"r_1.png: cannot read image"):
        load_split(root)
    root = _write_scene(tmp_path / "u", n=3)
    Image.new("RGBA", (9, 8)).save(root / "train" / "r_2.png")
    with pytest.raises(UserError, match=r"r_2.png: image is 9x8 but the scene's images are 8x8"):
        load_split(root)
    root = _write_scene(tmp_path / "v", n=1)
    (root / "train" / "r_0.png").write_bytes(b"garbage")
    with pytest.raises(UserError, match=r"r_0.png: cannot read image"):
        read_transforms(root / "transforms_train.json")


# ------------------------------------------------------------------ bad input: csv
def test_csv_without_filename_column(tmp_path):
    (tmp_path / "a.csv").write_text("id,file,label\n0,x.jpg,cat\n")
    with pytest.raises(UserError, match=r"a.csv: no 'filename' column"):
        read_csv(tmp_path / "a.csv")


def test_csv_missing_and_corrupt_images(course):
    office = course / "office"
    (office / "train" / "Fan_00001.jpg").unlink()
    with pytest.raises(UserError, match=r"Fan_00001.jpg: image listed in .*train.csv is missing"):
        CsvImageDataset(office / "train.csv", office / "train")
    (office / "val" / "Fan_00000.jpg").write_bytes(b"\xff\xd8 truncated jpeg")
    ds = CsvImageDataset(office / "val.csv", office / "val")
    with pytest.raises(UserError, match=r"Fan_00000.jpg: cannot read image"):
        ds[0]


def test_csv_label_unseen_in_training(course):
    office = course / "office"
    with pytest.raises(UserError, match=r"val.csv: label\(s\) \['Fan'\] unknown to the model"):
        CsvImageDataset(office / "val.csv", office / "val", classes=["Couch", "Desk"])


def test_csv_other_bad_input(tmp_path):
    with pytest.raises(UserError, match="csv file not found"):
        read_csv(tmp_path / "none.csv")
    (tmp_path / "empty.csv").write_text("id,filename,label\n")
    with pytest.raises(UserError, match="header but no rows"):
        read_csv(tmp_path / "empty.csv")
    (tmp_path / "bin.csv").write_bytes(b"id,filename\n\xff\xfe\x00\x81,x\n")
    with pytest.raises(UserError, match="not a readable utf-8 csv"):
        read_csv(tmp_path / "bin.csv")
    (tmp_path / "nolab.csv").write_text("id,filename,label\n0,a.jpg,\n")
    with pytest.raises(UserError, match="row 2 has an empty label"):
        read_csv(tmp_path / "nolab.csv", require_label=True, check_images=False)
    with pytest.raises(UserError, match="image not found"):
        load_rgb(tmp_path / "missing.jpg")
