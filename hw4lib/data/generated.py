"""Where the data of a run comes from: the user's course-layout folder, or generated data.

Generated data lives in ``data/generated/<profile>/`` (or ``$HW4_GENERATED/<profile>/``)::

    <scene>/            hotdog (and ficus) in the Blender layout   (hw4lib.data.scene)
    mini/, office/      csv image folders                          (hw4lib.data.corpus)

Each part is made on first use with the profile's ``SceneGen`` / ``CorpusGen`` settings, in a
temporary folder renamed into place when complete, and carries a marker file with those
settings: a part whose marker is missing or stale is regenerated, never half-used.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

from .. import env
from ..config import CorpusGen, data_root, get_profile
from ..errors import UserError

#: marker written into generated mini/ and office/ (and into ``hw4 data images`` outputs)
IMAGES_MARKER = ".hw4-images.json"
COURSE_PARTS = ("hotdog", "mini", "office")


def generated_root(root: str | Path | None = None) -> Path:
    """``root``, else ``$HW4_GENERATED``, else ``<project>/data/generated``."""
    return Path(root) if root else env.path("HW4_GENERATED")


def _read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def scene_settings(profile: str, scene: str = "hotdog", seed: int = 0) -> dict:
    """The ``generate_scene`` keyword arguments a profile uses (recorded in the marker)."""
    g = get_profile(profile).scene
    return {
        "scene": scene,
        "size": g.size,
        "n_train": g.n_train,
        "n_val": g.n_val,
        "n_test": g.n_test,
        "seed": seed,
        "supersample": g.supersample,
    }


def scene_dir(
    profile: str, scene: str = "hotdog", root: str | Path | None = None, progress: bool = True
) -> Path:
    """``<root>/<profile>/<scene>``, rendered first if absent, incomplete or made differently."""
    from .scene import MARKER, generate_scene  # the ray tracer (numpy, PIL): only here

    out = generated_root(root) / profile / scene
    want = scene_settings(profile, scene)
    have = _read_marker(out / MARKER)
    if have is None or any(have.get(k) != v for k, v in want.items()):
        generate_scene(out, progress=progress, owned=True, **want)
    return out


def corpus_settings(profile: str, seed: int = 0) -> dict:
    return {
        "generator": "hw4lib.data.corpus",
        "seed": seed,
        **dataclasses.asdict(get_profile(profile).corpus),
    }


def write_corpora(out: Path, settings: dict, progress: bool = True) -> None:
    """Run the corpus generator into a temporary folder, mark ``mini``/``office``, move them in."""
    from .corpus import generate_corpora  # numpy and PIL: only when corpora are written
    from .outdir import make_tmp, replace_dir

    cfg = CorpusGen(
        **{
            k: v
            for k, v in settings.items()
            if k in {f.name for f in dataclasses.fields(CorpusGen)}
        }
    )
    tmp = make_tmp(out / "images")
    try:
        generate_corpora(tmp, cfg, seed=settings["seed"], progress=progress)
        for part in ("mini", "office"):
            (tmp / part / IMAGES_MARKER).write_text(json.dumps(settings, indent=2))
        for part in ("mini", "office"):
            replace_dir(tmp / part, out / part, IMAGES_MARKER, owned=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def images_dir(profile: str, root: str | Path | None = None, progress: bool = True) -> Path:
    """``<root>/<profile>`` holding generated ``mini/`` and ``office/`` (made first if needed)."""
    out = generated_root(root) / profile
    want = corpus_settings(profile)
    if any(_read_marker(out / part / IMAGES_MARKER) != want for part in ("mini", "office")):
        write_corpora(out, want, progress)
    return out


def _make_part(profile: str, part: str) -> str:
    """One generated part (``images`` = mini + office, else a scene); run in a worker."""
    return str(
        images_dir(profile, progress=False)
        if part == "images"
        else scene_dir(profile, part, progress=False)
    )


def prepare_generated(
    profile: str,
    parts: tuple[str, ...] = ("hotdog", "ficus", "images"),
    extra: tuple = (),
    workers: int | None = None,
) -> dict[str, Path]:
    """Make the missing or stale generated ``parts`` side by side in worker processes
    (:mod:`hw4lib.parallel`); returns each part's folder (``images``: the one holding ``mini/``
    and ``office/``).

    ``extra`` holds more zero-argument picklable callables to run beside them (the report builds
    the C++ kernels there). Each part still writes into a temporary folder renamed into place,
    so workers never see each other's half-made data. A worker's error is raised as it was (a
    ``UserError`` keeps its one-line message).
    """
    from ..parallel import Task, plan_workers, run_tasks

    tasks = [Task(p, _make_part, {"profile": profile, "part": p}) for p in parts]
    tasks += [Task(getattr(f, "__name__", f"extra {i}"), f) for i, f in enumerate(extra)]
    w = plan_workers("generators", len(tasks), count=workers)
    made = run_tasks(tasks, w, label="hw4 data prepare")
    return {p: Path(made[p]) for p in parts}


def missing_parts(root: Path, need: tuple[str, ...]) -> list[str]:
    checks = {"hotdog": "transforms_train.json", "mini": "train.csv", "office": "train.csv"}
    return [p for p in need if not (root / p / checks.get(p, "")).exists()]


def course_root(
    data_dir: str | Path | None,
    profile: str,
    need: tuple[str, ...] = COURSE_PARTS,
    progress: bool = True,
) -> Path:
    """The folder holding ``need`` (of hotdog/, mini/, office/) in the course layout.

    ``data_dir`` (the ``--data`` option) must hold them; otherwise ``$HW4_DATA`` must; otherwise
    ``data/hw4_data`` is used when it holds them, else the profile's generated data (made on
    first use). The second generated scene has no course counterpart: use :func:`scene_dir`.
    """
    if not set(need) <= set(COURSE_PARTS):
        raise ValueError(f"need must be among {COURSE_PARTS}, got {need}")
    root = Path(data_dir) if data_dir else data_root()
    why = "--data" if data_dir else "$HW4_DATA" if env.given("HW4_DATA") else None
    if why is not None:
        if not root.is_dir():
            raise UserError(
                f"{root}: data folder ({why}) not found; it should hold the course "
                "layout hotdog/, mini/, office/ (or leave it out for generated data)"
            )
        missing = missing_parts(root, need)
        if missing:
            raise UserError(
                f"{root}: data folder ({why}) lacks {', '.join(missing)} "
                f"(e.g. {root / missing[0]}); add it or leave {why} out"
            )
        return root
    if root.is_dir() and need and not missing_parts(root, need):
        return root
    gen = generated_root() / profile
    for part in need:
        if part in ("mini", "office"):
            images_dir(profile, progress=progress)
        else:
            scene_dir(profile, part, progress=progress)
    return gen


def describe_source(path: str | Path) -> str:
    """``generated:<profile>/<part>`` for generated data, else the absolute path (for manifests)."""
    p = Path(path).resolve()
    try:
        rel = p.relative_to(generated_root().resolve())
        return f"generated:{rel.as_posix()}"
    except ValueError:
        return str(p)
