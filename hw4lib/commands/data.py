"""`hw4 data scene|images|prepare|import-folder|check`: make, import and validate data."""

from __future__ import annotations

import sys
from pathlib import Path

from . import add_profile

SCENE_NAMES = ("hotdog", "ficus")  # hw4lib.data.scene.SCENES (not imported: keep --help fast)


def register(sub) -> None:
    p = sub.add_parser("data", help="generate, import and check data in the course's formats")
    ds = p.add_subparsers(dest="data", required=True)

    s = ds.add_parser("scene", help="render a procedural scene in the Blender synthetic layout")
    s.add_argument("--out", required=True, help="output folder (new, empty, or a previous scene)")
    s.add_argument("--scene", default="hotdog", choices=SCENE_NAMES)
    s.add_argument("--size", type=int, default=100, help="image side in pixels (800 = course)")
    s.add_argument("--train", type=int, default=50, help="training views")
    s.add_argument("--val", type=int, default=50, help="validation views")
    s.add_argument("--test", type=int, default=0, help="test views (0 = no transforms_test.json)")
    s.add_argument("--seed", type=int, default=0, help="camera placement seed")
    s.add_argument(
        "--supersample",
        type=int,
        default=2,
        help="rays per pixel side for anti-aliased edges and fractional alpha",
    )
    s.set_defaults(func=_scene)

    im = ds.add_parser("images", help="procedural mini/ and office/ corpora in the csv layout")
    im.add_argument("--out", required=True, help="output folder (gets mini/ and office/)")
    add_profile(im)
    im.add_argument("--seed", type=int, default=0)
    im.set_defaults(func=_images)

    pr = ds.add_parser("prepare", help="make the profile's generated data under data/generated/")
    add_profile(pr)
    pr.add_argument(
        "--only",
        default="hotdog,ficus,images",
        help="comma-separated parts among hotdog, ficus, images",
    )
    pr.set_defaults(func=_prepare)

    imp = ds.add_parser("import-folder", help="class-folder image tree -> course csv layout")
    imp.add_argument("src", help="<class>/*.jpg or <domain>/<class>/*.jpg (Office-Home)")
    imp.add_argument("--out", required=True, help="output folder, e.g. data/hw4_data/office")
    imp.add_argument("--val-fraction", type=float, default=0.1)
    imp.add_argument("--seed", type=int, default=0)
    imp.add_argument(
        "--domain",
        default=None,
        help='with <domain>/<class>/ trees: import one domain (e.g. "Real World"); '
        "default: merge all",
    )
    imp.set_defaults(func=_import)

    c = ds.add_parser("check", help="validate a scene, a csv image folder or a course root")
    c.add_argument("dir")
    c.set_defaults(func=_check)


def _scene(a) -> int:
    from ..data.scene import generate_scene

    out = generate_scene(
        Path(a.out), a.scene, a.size, a.train, a.val, a.test, a.seed, a.supersample
    )
    print(
        f"wrote {a.scene} ({a.train} train, {a.val} val, {a.test} test views, {a.size} px) to {out}"
    )
    return 0


def _images(a) -> int:
    import dataclasses
    import json
    import shutil

    from ..config import get_profile, profile_name
    from ..data.corpus import generate_corpora
    from ..data.generated import IMAGES_MARKER
    from ..data.outdir import make_tmp, replace_dir
    from ..errors import UserError

    profile = profile_name(a.profile)
    cfg = get_profile(profile).corpus
    out = Path(a.out)
    if out.exists() and (
        not out.is_dir() or (any(out.iterdir()) and not (out / IMAGES_MARKER).is_file())
    ):
        raise UserError(
            f"{out}: exists and is not an empty folder or a previous "
            "`hw4 data images` output; choose a new --out"
        )
    tmp = make_tmp(out)
    try:
        generate_corpora(tmp, cfg, seed=a.seed)
        (tmp / IMAGES_MARKER).write_text(
            json.dumps(
                {
                    "generator": "hw4lib.data.corpus",
                    "profile": profile,
                    "seed": a.seed,
                    **dataclasses.asdict(cfg),
                },
                indent=2,
            )
        )
        replace_dir(tmp, out, IMAGES_MARKER)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    print(f"wrote mini/ and office/ ({profile} profile, seed {a.seed}) to {out}")
    return 0


def _prepare(a) -> int:
    from ..config import profile_name
    from ..data.generated import prepare_generated
    from ..errors import UserError

    profile = profile_name(a.profile)
    parts = [p.strip() for p in a.only.split(",") if p.strip()]
    bad = [p for p in parts if p not in (*SCENE_NAMES, "images")]
    if bad:
        raise UserError(
            f"--only {a.only!r}: unknown part(s) {bad}; choose among "
            f"{', '.join((*SCENE_NAMES, 'images'))}"
        )
    print(f"making {', '.join(parts)} ({profile} profile) side by side...", flush=True)
    for part, path in prepare_generated(profile, tuple(parts)).items():
        print(f"{part}: {path}")
    return 0


def _import(a) -> int:
    from ..data.importer import import_folder

    s = import_folder(a.src, a.out, a.val_fraction, a.seed, a.domain)
    print(f"imported {s['classes']} classes: {s['train']} train, {s['val']} val images to {a.out}")
    return 0


def _check(a) -> int:
    from ..data.check import check_path

    rep = check_path(a.dir)
    for line in rep.summary:
        print(line)
    if rep.problems:
        for p in rep.problems:
            print(f"problem: {p}", file=sys.stderr)
        print(f"error: {len(rep.problems)} problem(s) found in {a.dir}", file=sys.stderr)
        return 2
    print(f"ok: {a.dir} ({rep.kind})")
    return 0
