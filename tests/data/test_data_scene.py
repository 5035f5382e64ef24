"""The procedural Blender-format scenes: ray tracer closed forms, camera layout, alpha,
determinism."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from PIL import Image

from hw4lib.data.blender import load_split, read_transforms
from hw4lib.data.raytrace import (
    Capsule,
    Cylinder,
    Ellipsoid,
    Light,
    Material,
    Scene,
    nearest_hit,
    shade,
)
from hw4lib.data.scene import (
    CAMERA_ANGLE_X,
    MARKER,
    RADIUS,
    SCENES,
    camera_rays,
    generate_scene,
    look_at,
    preview,
    render_view,
)
from hw4lib.errors import UserError

WHITE = Material((1.0, 1.0, 1.0), specular=0.0)


def _ray(o, d):
    d = np.asarray(d, float)
    return np.asarray([o], float), np.asarray([d / np.linalg.norm(d)])


# ------------------------------------------------------------------ ray tracer closed forms
def test_sphere_hit_distance_and_normal():
    s = Ellipsoid((0, 0, 0), (1, 1, 1), WHITE)
    o, d = _ray((0, 0, 5), (0, 0, -1))
    assert s.intersect(o, d)[0] == pytest.approx(4.0)
    # a ray that misses by 0.01 and one from inside (far root)
    o2, d2 = _ray((1.01, 0, 5), (0, 0, -1))
    assert np.isinf(s.intersect(o2, d2)[0])
    o3, d3 = _ray((0, 0, 0), (1, 0, 0))
    assert s.intersect(o3, d3)[0] == pytest.approx(1.0)
    # grazing at x = 0.6: z = 0.8, t = 5 - 0.8
    o4, d4 = _ray((0.6, 0, 5), (0, 0, -1))
    assert s.intersect(o4, d4)[0] == pytest.approx(4.2)
    np.testing.assert_allclose(s.normal(np.array([[0.6, 0, 0.8]])), [[0.6, 0, 0.8]], atol=1e-12)


def test_rotated_ellipsoid_hit_and_normal():
    # radii (2, 1, 0.5) with local x along world y: the long axis lies on world y
    R = np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]])
    e = Ellipsoid((0, 0, 0), (2, 1, 0.5), WHITE, R)
    o, d = _ray((0, 5, 0), (0, -1, 0))
    assert e.intersect(o, d)[0] == pytest.approx(3.0)
    o, d = _ray((5, 0, 0), (-1, 0, 0))
    assert e.intersect(o, d)[0] == pytest.approx(4.0)
    o, d = _ray((0, 0, 5), (0, 0, -1))
    assert e.intersect(o, d)[0] == pytest.approx(4.5)
    np.testing.assert_allclose(e.normal(np.array([[0, 2.0, 0]])), [[0, 1, 0]], atol=1e-12)


def test_capsule_body_and_cap():
    c = Capsule((-1, 0, 0), (1, 0, 0), 0.25, WHITE)
    o, d = _ray((0.5, 0, 3), (0, 0, -1))  # onto the body from above
    assert c.intersect(o, d)[0] == pytest.approx(2.75)
    o, d = _ray((5, 0, 0), (-1, 0, 0))  # along the axis onto the round cap
    assert c.intersect(o, d)[0] == pytest.approx(3.75)
    o, d = _ray((1.15, 0, 3), (0, 0, -1))  # the cap sphere beyond the end: z = sqrt(r^2 - .15^2)
    assert c.intersect(o, d)[0] == pytest.approx(3 - math.sqrt(0.25**2 - 0.15**2))
    o, d = _ray((1.3, 0, 3), (0, 0, -1))  # past the cap
    assert np.isinf(c.intersect(o, d)[0])
    np.testing.assert_allclose(
        c.normal(np.array([[0.3, 0, 0.25], [1.25, 0, 0]])), [[0, 0, 1], [1, 0, 0]], atol=1e-12
    )


def test_cylinder_side_and_flat_cap():
    c = Cylinder((0, 0, 0), (0, 0, 1), 0.5, WHITE)
    o, d = _ray((0, 0, 5), (0, 0, -1))  # onto the top cap
    assert c.intersect(o, d)[0] == pytest.approx(4.0)
    o, d = _ray((3, 0, 0.5), (-1, 0, 0))  # onto the side
    assert c.intersect(o, d)[0] == pytest.approx(2.5)
    o, d = _ray((3, 0, 1.2), (-1, 0, 0))  # above it
    assert np.isinf(c.intersect(o, d)[0])
    np.testing.assert_allclose(
        c.normal(np.array([[0.1, 0, 1.0], [0.5, 0, 0.5], [0, 0.2, 0]])),
        [[0, 0, 1], [1, 0, 0], [0, 0, -1]],
        atol=1e-12,
    )


def test_nearest_of_two_shapes_and_shadow():
    near = Ellipsoid((0, 0, 1), (0.5, 0.5, 0.5), WHITE)
    far = Ellipsoid((0, 0, -1), (0.5, 0.5, 0.5), WHITE)
    scene = Scene([far, near], [Light((0, 0, 1))], ambient=0.0)
    o, d = _ray((0, 0, 5), (0, 0, -1))
    t, idx = nearest_hit(scene, o, d)
    assert t[0] == pytest.approx(3.5) and idx[0] == 1
    rgb, hit = shade(scene, o, d)  # the near sphere's top faces the light: n.L = 1
    np.testing.assert_allclose(rgb[0], 1.0)
    # a point on the far sphere under the near one, seen along its own normal: in shadow
    n_q = np.array([0.4, 0.0, math.sqrt(1 - 0.16)])
    q = np.array([0.0, 0, -1]) + 0.5 * n_q
    o, d = q[None] + 3 * n_q, -n_q[None]
    rgb, hit = shade(scene, o, d)
    assert hit[0] and np.allclose(rgb[0], 0.0)
    lit = Scene([far], [Light((0, 0, 1))], ambient=0.0)
    np.testing.assert_allclose(shade(lit, o, d)[0][0], n_q[2])


def test_lambert_and_specular_values():
    # a sphere lit from +z, seen from +z: centre colour = albedo * (ambient + 1) + specular
    s = Ellipsoid((0, 0, 0), (1, 1, 1), Material((0.3, 0.2, 0.1), specular=0.25, shininess=8))
    scene = Scene([s], [Light((0, 0, 1), shadows=False)], ambient=0.1)
    rgb, hit = shade(scene, *_ray((0, 0, 5), (0, 0, -1)))
    np.testing.assert_allclose(rgb[0], np.array([0.3, 0.2, 0.1]) * 1.1 + 0.25)
    # at the point with normal n = (sin a, 0, cos a) seen from +z: n.L = cos a, half vector = z
    a = 0.6
    o = np.array([[math.sin(a), 0.0, 5.0]])
    rgb, _ = shade(scene, o, np.array([[0.0, 0, -1]]))
    expect = np.array([0.3, 0.2, 0.1]) * (0.1 + math.cos(a)) + 0.25 * math.cos(a) ** 8
    np.testing.assert_allclose(rgb[0], expect, rtol=1e-9)
    # specular depends on the view: the same point seen along its normal has a full highlight
    # only if the light is there too; from a side view the highlight drops
    o_side = np.array([[5.0, 0.0, 0.0]])
    rgb_side, _ = shade(scene, o_side, np.array([[-1.0, 0, 0]]))  # hits (1,0,0): n.L = 0
    np.testing.assert_allclose(rgb_side[0], np.array([0.3, 0.2, 0.1]) * 0.1)


# ------------------------------------------------------------------ cameras and rays
def test_look_at_is_opengl_camera_to_world():
    pos = np.array([1.0, -2.0, 3.0])
    m = look_at(pos)
    R = m[:3, :3]
    np.testing.assert_allclose(R.T @ R, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    np.testing.assert_allclose(m[:3, 3], pos)
    # the camera looks down its -z: towards the origin
    np.testing.assert_allclose(R @ [0, 0, -1], -pos / np.linalg.norm(pos), atol=1e-12)
    assert (R @ [0, 1, 0])[2] > 0  # image up points up in the world
    assert (R @ [1, 0, 0])[2] == pytest.approx(0.0, abs=1e-12)  # no roll


def test_centre_ray_and_pixel_centres():
    m = look_at(np.array([0.0, -4.0, 0.0]))
    o, d = camera_rays(m, 4, supersample=1)
    assert o.shape == d.shape == (4, 4, 1, 3)
    focal = 0.5 * 4 / math.tan(0.5 * CAMERA_ANGLE_X)
    # pixel (row 0, col 0) centre sits at (0.5, 0.5): x = (0.5 - 2) / f, y = -(0.5 - 2) / f
    cam = np.array([(0.5 - 2) / focal, (2 - 0.5) / focal, -1.0])
    np.testing.assert_allclose(d[0, 0, 0], m[:3, :3] @ cam / np.linalg.norm(cam), atol=1e-12)
    # the four central pixels are symmetric about the optical axis (0, 1, 0)
    mean = d[1:3, 1:3, 0].reshape(-1, 3).mean(0)
    np.testing.assert_allclose(mean / np.linalg.norm(mean), [0, 1, 0], atol=1e-12)


def test_supersampled_coverage_matches_disc_area():
    # a sphere of radius r at distance D projects to a disc of radius f * tan(asin(r / D))
    size, r = 64, 0.8
    scene = Scene([Ellipsoid((0, 0, 0), (r, r, r), WHITE)], [Light((0, 0, 1))])
    img = render_view(scene, look_at(np.array([RADIUS, 0, 0])), size, supersample=4)
    focal = 0.5 * size / math.tan(0.5 * CAMERA_ANGLE_X)
    disc = math.pi * (focal * math.tan(math.asin(r / RADIUS))) ** 2
    alpha = img[..., 3] / 255.0
    assert alpha.sum() == pytest.approx(disc, rel=0.01)
    edge = (alpha > 0) & (alpha < 1)
    assert edge.sum() > 20  # a ring of fractional pixels
    assert alpha[size // 2, size // 2] == 1.0 and alpha[0, 0] == 0.0


# ------------------------------------------------------------------ generated scenes
@pytest.fixture(scope="module")
def hotdog(tmp_path_factory):
    out = tmp_path_factory.mktemp("scene") / "hotdog"
    return generate_scene(out, "hotdog", size=24, n_train=3, n_val=2, seed=0, progress=False)


def test_layout_matches_course_folder(hotdog):
    names = sorted(p.name for p in hotdog.iterdir() if not p.name.startswith("."))
    assert names == ["train", "transforms_train.json", "transforms_val.json", "val"]
    meta = json.loads((hotdog / "transforms_train.json").read_text())
    assert meta["camera_angle_x"] == pytest.approx(0.6911, abs=1e-4)
    assert [f["file_path"] for f in meta["frames"]] == ["./train/r_0", "./train/r_1", "./train/r_2"]
    for i in range(3):
        with Image.open(hotdog / "train" / f"r_{i}.png") as im:
            assert im.mode == "RGBA" and im.size == (24, 24)
    s = load_split(hotdog, "val")
    assert s.images.shape == (2, 24, 24, 4) and s.images.dtype.__str__() == "torch.uint8"


@pytest.mark.parametrize("split", ["train", "val"])
def test_cameras_on_upper_hemisphere_looking_at_origin(hotdog, split):
    cams = read_transforms(hotdog / f"transforms_{split}.json")
    poses = cams.poses.double().numpy()
    pos = poses[:, :3, 3]
    np.testing.assert_allclose(np.linalg.norm(pos, axis=1), RADIUS, rtol=1e-6)
    assert (pos[:, 2] > 0).all()
    look = -poses[:, :3, 2]  # OpenGL: the camera looks down -z
    np.testing.assert_allclose(look, -pos / RADIUS, atol=1e-6)
    assert (poses[:, 3] == [0, 0, 0, 1]).all()


def test_val_cameras_differ_from_train(hotdog):
    tr = read_transforms(hotdog / "transforms_train.json").poses[:, :3, 3].numpy()
    va = read_transforms(hotdog / "transforms_val.json").poses[:, :3, 3].numpy()
    dist = np.linalg.norm(tr[:, None] - va[None], axis=-1)
    assert dist.min() > 1e-3


def test_alpha_corners_centre_and_edges(hotdog):
    imgs = load_split(hotdog, "train").images.numpy()
    a = imgs[..., 3]
    assert (a[:, 0, 0] == 0).all() and (a[:, -1, -1] == 0).all()
    assert (a[:, 0, -1] == 0).all() and (a[:, -1, 0] == 0).all()
    assert (a[:, 11:13, 11:13] == 255).all()  # the plate under the origin
    assert ((a > 0) & (a < 255)).sum() > 0  # anti-aliased edges
    # background colour is black where alpha is 0 (nothing to composite)
    assert (imgs[..., :3][a == 0] == 0).all()
    # both a specular-bright and a coloured object are there (not a flat silhouette)
    rgb = imgs[..., :3][a == 255].astype(int)
    assert rgb.std(0).max() > 20


def test_deterministic_for_a_seed(tmp_path, hotdog):
    again = generate_scene(
        tmp_path / "again", "hotdog", size=24, n_train=3, n_val=2, seed=0, progress=False
    )
    for rel in ["transforms_train.json", "transforms_val.json", "train/r_1.png", "val/r_0.png"]:
        assert (again / rel).read_bytes() == (hotdog / rel).read_bytes()
    other = generate_scene(
        tmp_path / "other", "hotdog", size=24, n_train=3, n_val=2, seed=1, progress=False
    )
    assert (other / "transforms_train.json").read_bytes() != (
        hotdog / "transforms_train.json"
    ).read_bytes()


def test_hotdog_extent_within_the_course_box():
    scene = SCENES["hotdog"]()
    # probe a dense grid of vertical rays: every hit point lies within [-1.3,1.3]^2 x [-0.3,0.5]
    xs = np.linspace(-1.5, 1.5, 121)
    X, Y = np.meshgrid(xs, xs)
    o = np.stack([X.ravel(), Y.ravel(), np.full(X.size, 3.0)], 1)
    d = np.broadcast_to([0.0, 0, -1], o.shape)
    t, idx = nearest_hit(scene, o, np.ascontiguousarray(d))
    p = o[idx >= 0] + t[idx >= 0, None] * d[idx >= 0]
    assert len(p) > 0.3 * len(o)
    assert np.abs(p[:, :2]).max() <= 1.3 and p[:, 2].max() <= 0.5 and p[:, 2].min() >= -0.3


def test_ficus_has_thin_parts_and_fine_texture(tmp_path):
    out = generate_scene(
        tmp_path / "ficus", "ficus", size=32, n_train=2, n_val=1, seed=0, progress=False
    )
    a = load_split(out, "train").images.numpy()[..., 3]
    assert (a[:, 0, 0] == 0).all() and ((a > 0) & (a < 255)).sum() > 10
    thin = [s for s in SCENES["ficus"]().shapes if isinstance(s, Capsule) and s.radius < 0.02]
    assert len(thin) >= 6  # branches about one pixel wide at 100 px (~0.03 units a pixel)


def test_refuses_foreign_folder_and_replaces_own(tmp_path, hotdog):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(UserError, match="not empty"):
        generate_scene(foreign, size=8, n_train=1, n_val=1, progress=False)
    assert (foreign / "notes.txt").read_text() == "keep me"
    assert [p.name for p in foreign.iterdir()] == ["notes.txt"]
    own = generate_scene(tmp_path / "own", size=8, n_train=2, n_val=1, progress=False)
    generate_scene(own, size=8, n_train=1, n_val=1, progress=False)
    assert sorted(p.name for p in (own / "train").iterdir()) == ["r_0.png"]
    assert (own / MARKER).is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    with pytest.raises(UserError, match="unknown scene"):
        generate_scene(tmp_path / "x", "teapot", progress=False)
    with pytest.raises(UserError, match="size"):
        generate_scene(tmp_path / "x", size=0, progress=False)


def test_preview_row(tmp_path, hotdog):
    png = preview(hotdog, tmp_path / "fig" / "scene.png", n=3)
    with Image.open(png) as im:
        assert im.mode == "RGB" and im.size[1] == 24 and im.size[0] > 3 * 24
        arr = np.asarray(im)
    assert (arr[0, 0] == 255).all()  # composited on white


def test_camera_sets_are_prefix_stable():
    from hw4lib.data.scene import sample_cameras

    few = sample_cameras(4, np.random.default_rng([0, 0]))
    many = sample_cameras(50, np.random.default_rng([0, 0]))
    np.testing.assert_array_equal(few, many[:4])
    z = many[:, 2, 3] / RADIUS  # area-uniform heights within the elevation band
    assert z.min() >= math.sin(math.radians(5)) - 1e-12 and z.max() <= math.sin(math.radians(80))
