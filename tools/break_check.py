"""Break the pipeline one behaviour at a time and check that a test notices.

    python tools/break_check.py            # every break (several minutes on 2 cores)
    python tools/break_check.py --list     # what each break does and which tests it runs
    python tools/break_check.py --only predict_class0,render_backwards

Each break is a temporary source patch: one exact snippet of one file replaced. The script
applies it, runs the tests that guard that behaviour (``pytest -x``, smoke profile) and
expects them to FAIL; then puts the file back byte for byte with a fresh modification time,
even on Ctrl-C or SIGTERM: anything built from the patched file meanwhile (the C++ kernels'
objects, bytecode) is then older than the source and is rebuilt, never reused. A copy of every
file is kept under ``.break_check_backup/`` while it is patched; after a hard kill, the next
start restores it first (one break check at a time: a second refuses to start). Not part of
``make test``: run it on a tree whose tests pass. Exit code 0 when every break made its tests
fail, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BACKUP = ROOT / ".break_check_backup"


@dataclass(frozen=True)
class Break:
    name: str
    what: str  # the wrong behaviour, in words
    file: str  # relative to the project root
    old: str  # must occur exactly once in the file
    new: str
    tests: tuple[str, ...]  # pytest arguments: files, node ids, -k expressions


BREAKS = (
    Break(
        "masked_adam_moves_zeros",
        "the masked Adam kernel updates entries whose gradient is zero (momentum moves them)",
        "hw4lib/nerf/adam.cpp",
        "        if (g == 0.f) continue;\n",
        "",
        ("tests/nerf/test_nerf_optim.py", "-k", "zero_gradient"),
    ),
    Break(
        "sparse_rows_drop_last",
        "the sparse lookup's gradient loses the last voxel it touched",
        "hw4lib/nerf/trilinear.cpp",
        "  for (int64_t q = 0; q < K; ++q) S[I[q]] = -1;\n",
        "  for (int64_t q = 0; q < K; ++q) S[I[q]] = -1;\n  K = K > 0 ? K - 1 : 0;\n",
        ("tests/nerf/test_nerf_optim.py", "-k", "sparse_lookup"),
    ),
    Break(
        "error_map_uniform",
        "error-guided draws ignore the error (every tile weighs the same)",
        "hw4lib/nerf/sampling.py",
        "self.err_at_refresh.double() * self.count",
        "self.count.double()",
        ("tests/nerf/test_nerf_optim.py", "-k", "proportion"),
    ),
    Break(
        "error_map_not_saved",
        "a checkpoint forgets the error map (a resumed run draws other rays)",
        "hw4lib/nerf/train.py",
        '            state["errors"] = errors.state_dict() if errors is not None else None\n',
        '            state["errors"] = None\n',
        ("tests/nerf/test_nerf_optim.py", "-k", "resumes"),
    ),
    Break(
        "render_backwards",
        "hw4 nerf render shoots every ray backwards (background only)",
        "hw4lib/nerf/images.py",
        "    o, d = rays_of_pose(c2w.to(dev), dirs)\n",
        "    o, d = rays_of_pose(c2w.to(dev), dirs)\n    d = -d\n",
        ("tests/nerf/test_nerf_train.py", "-k", "render_writes or eval_command"),
    ),
    Break(
        "predict_class0",
        "hw4 ssl predict always answers the first class",
        "hw4lib/ssl/predict.py",
        ".argmax(1).cpu())",
        ".argmax(1).cpu() * 0)",
        ("tests/commands/test_ssl_cli.py", "-k", "predict_keeps"),
    ),
    Break(
        "augment_plain",
        "BYOL augmentation replaced by plain normalisation",
        "hw4lib/ssl/augment.py",
        "        x = x.clamp(0, 1)\n        x = random_resized_crop(",
        "        return normalize(x.clamp(0, 1))\n        x = random_resized_crop(",
        ("tests/ssl/test_ssl_parts.py", "-k", "batch_augment"),
    ),
    Break(
        "jitter_identity",
        "colour jitter is the identity",
        "hw4lib/ssl/augment.py",
        '    """Per-sample brightness, contrast, saturation and hue jitter, applied with prob. '
        'jitter_p."""\n',
        '    """Per-sample brightness, contrast, saturation and hue jitter, applied with prob. '
        'jitter_p."""\n    return x\n',
        ("tests/ssl/test_ssl_parts.py", "-k", "hue"),
    ),
    Break(
        "crop_ignores_scale",
        "random crops ignore the scale range they are given",
        "hw4lib/ssl/augment.py",
        "    area = _uniform(n, *scale, dev)\n",
        "    area = _uniform(n, 0.08, 1.0, dev)\n",
        ("tests/ssl/test_ssl_parts.py", "-k", "crop"),
    ),
    Break(
        "nerf_resume_restarts",
        "DVGO --resume throws the checkpoint away and starts over",
        "hw4lib/nerf/run.py",
        "    ck = begin_run(run, NERF_TRAIN, plan, settings, load_resume_checkpoint)\n",
        "    ck = begin_run(run, NERF_TRAIN, plan, settings, lambda path: None)\n",
        ("tests/nerf/test_nerf_train.py", "-k", "nan_loss or resumed_run"),
    ),
    Break(
        "nerf_resume_reseeds",
        "a DVGO resume reseeds the ray sampler with +iter (as before)",
        "hw4lib/nerf/train.py",
        '        gen.set_state(state["gen"])\n',
        '        gen.manual_seed(cfg.seed * 1000 + state["iter"])\n',
        ("tests/nerf/test_nerf_train.py", "-k", "resumed_run"),
    ),
    Break(
        "ssl_resume_restarts",
        "an SSL --resume throws last.pt away and starts over",
        "hw4lib/ssl/checkpoint.py",
        "    return begin_run(run_dir, kind, plan, settings, lambda path: load(path, keys))\n",
        "    return begin_run(run_dir, kind, plan, settings, lambda path: None)\n",
        ("tests/ssl/test_ssl_train.py", "-k", "resume"),
    ),
    Break(
        "supervised_lr0",
        "supervised pre-training with a learning rate of 0",
        "hw4lib/ssl/pretrain_run.py",
        '"lr": cfg.pretrain_lr if method == "byol" else cfg.supervised_lr,',
        '"lr": cfg.pretrain_lr if method == "byol" else 0.0,',
        ("tests/ssl/test_ssl_train.py", "-k", "supervised_pretraining"),
    ),
    Break(
        "bench_inverted",
        "hw4 bench grid prints the inverse of its speed-up",
        "hw4lib/nerf/bench.py",
        "ratios = [r / o for r, o in zip(t_ref, t_ours)]",
        "ratios = [o / r for r, o in zip(t_ref, t_ours)]",
        ("tests/nerf/test_nerf_train.py", "-k", "benchmarks"),
    ),
    Break(
        "bench_mean_not_median",
        "hw4 bench grid reports the mean ratio, not the median",
        "hw4lib/nerf/bench.py",
        "med = statistics.median(ratios)",
        "med = statistics.mean(ratios)",
        ("tests/nerf/test_nerf_train.py", "-k", "benchmarks"),
    ),
    Break(
        "device_always_cpu",
        "--device auto never picks the GPU",
        "hw4lib/config.py",
        '        return "cuda" if torch.cuda.is_available() else "cpu"\n',
        '        return "cpu"\n',
        ("tests/test_config.py", "-k", "device_resolution"),
    ),
    Break(
        "run_folder_unguarded",
        "run commands write into any folder (the clobbering bug)",
        "hw4lib/runs.py",
        "    run = Path(run_dir)\n    if not run.exists():\n",
        "    run = Path(run_dir)\n    if True:\n",
        ("tests/test_runs.py", "-k", "strangers_settings or another_commands or torn_writes"),
    ),
    Break(
        "reuse_other_settings",
        "a finished run is reused whatever settings were asked for",
        "hw4lib/runs.py",
        "    done = _json(run / kind.done) if same and ",
        "    done = _json(run / kind.done) if ",
        ("tests/test_runs.py",),
    ),
    Break(
        "lpips_always_skips",
        "missing LPIPS weights skip even where HW4_REQUIRE_LPIPS=1",
        "tests/conftest.py",
        'if os.environ.get("HW4_REQUIRE_LPIPS") == "1":',
        "if False:",
        ("tests/test_lpips_required.py",),
    ),
    Break(
        "hw4_1_wrong_folder",
        "hw4_1.sh writes its PNGs one folder too deep",
        "hw4_1.sh",
        '--out "$2"',
        '--out "$2/renders"',
        ("tests/nerf/test_nerf_train.py", "-k", "hw4_1"),
    ),
    Break(
        "hw4_2_wrong_run",
        "hw4_2.sh ignores $HW4_SSL_RUN",
        "hw4_2.sh",
        'run="${HW4_SSL_RUN:-$here/runs/full/ssl/finetune_C}"',
        'run="$here/runs/full/ssl/finetune_C"',
        ("tests/commands/test_ssl_cli.py", "-k", "hw4_2"),
    ),
    Break(
        "atomic_private",
        "the atomic writer makes every file 0600 (mkstemp's mode), private in a shared run folder",
        "hw4lib/atomic.py",
        "os.open(tmp, flags, 0o666)",
        "os.open(tmp, flags, 0o600)",
        ("tests/test_atomic.py", "-k", "readable or umask"),
    ),
    Break(
        "ssl_nan_traceback",
        "a NaN loss in SSL training is a RuntimeError (a traceback, exit 1), not one line, exit 2",
        "hw4lib/ssl/loop.py",
        '        return check_finite(loss, self.run_dir, what, where, self.run_dir / "last.pt")\n',
        '        if loss != loss:\n            raise RuntimeError(f"{what} diverged")\n'
        "        return loss\n",
        ("tests/commands/test_ssl_cli.py", "-k", "nan_in"),
    ),
    Break(
        "finetune_nan_unchecked",
        "fine-tuning goes on past a NaN loss and overwrites last.pt with NaN weights",
        "hw4lib/ssl/finetune.py",
        '    run.check_finite(train_loss, f"setting {setup.setting}", f"epoch {e}")\n',
        "",
        ("tests/commands/test_ssl_cli.py", "-k", "nan_in_finetuning"),
    ),
    Break(
        "pretrain_nan_unchecked",
        "BYOL pre-training goes on past a NaN loss and writes NaN weights over last.pt",
        "hw4lib/ssl/pretrain.py",
        "mean_loss = run.check_finite(",
        "mean_loss = (lambda loss, *_: loss)(",
        ("tests/commands/test_ssl_cli.py", "-k", "nan_in_pretraining"),
    ),
    Break(
        "nerf_done_before_val",
        "done.json is written before the val render (a kill there leaves a 'finished' run "
        "without val_psnr, reused as it is)",
        "hw4lib/nerf/run.py",
        "    v = val_psnr(req, progress=progress)\n",
        "    finish_run(run, NERF_TRAIN, result)\n    v = val_psnr(req, progress=progress)\n",
        ("tests/nerf/test_nerf_train.py", "-k", "val_render"),
    ),
    Break(
        "nerf_trained_unmarked",
        "a finished DVGO run does not record that training is over before its val render",
        "hw4lib/nerf/train.py",
        '    atomic_save(\n        {"state": {"stage": TRAINED,',
        '    (lambda *_: None)(\n        {"state": {"stage": TRAINED,',
        ("tests/nerf/test_nerf_train.py", "-k", "val_render"),
    ),
    Break(
        "view_count_lr_off",
        "DVGO's coarse stage trains without its view-count learning rate",
        "hw4lib/nerf/train.py",
        'train_stage(setup, model, cfg.coarse, "coarse", state, pervoxel_lr=lr_scale)',
        'train_stage(setup, model, cfg.coarse, "coarse", state, pervoxel_lr=None)',
        ("tests/nerf/test_nerf_mechanisms.py", "-k", "view_count"),
    ),
    Break(
        "view_count_lr_ignored",
        "a DVGO step ignores the per-voxel learning rate it is given",
        "hw4lib/nerf/train.py",
        "p.copy_(b + (p - b) * pervoxel_lr[..., None])",
        "p.copy_(p)",
        ("tests/nerf/test_nerf_mechanisms.py", "-k", "view_count"),
    ),
    Break(
        "entropy_rewarded",
        "DVGO's entropy regulariser enters the loss with its sign flipped",
        "hw4lib/nerf/train.py",
        "return mse + st.weight_entropy * entropy",
        "return mse - st.weight_entropy * entropy",
        ("tests/nerf/test_nerf_mechanisms.py", "-k", "entropy"),
    ),
    Break(
        "entropy_negated",
        "the binary entropy of the background weight is computed with its sign flipped",
        "hw4lib/nerf/render.py",
        "    return -(p * torch.log(p) + (1 - p) * torch.log(1 - p)).mean()\n",
        "    return (p * torch.log(p) + (1 - p) * torch.log(1 - p)).mean()\n",
        ("tests/nerf/test_nerf_mechanisms.py", "-k", "entropy"),
    ),
    Break(
        "rgbper_weights_attached",
        "DVGO's per-point colour loss lets its gradient into the weights (and so the density)",
        "hw4lib/nerf/render.py",
        "    return (w.detach() * err).sum() / n_rays\n",
        "    return (w * err).sum() / n_rays\n",
        ("tests/nerf/test_nerf_mechanisms.py", "-k", "per_point"),
    ),
    Break(
        "byol_target_frozen",
        "BYOL's target network never follows the online one (no EMA update)",
        "hw4lib/ssl/pretrain.py",
        "                    model.update_moving_average()\n",
        "                    pass\n",
        ("tests/ssl/test_ssl_mechanisms.py", "-k", "target_network"),
    ),
    Break(
        "frozen_bn_pretrain_stats",
        "D/E keep pre-training's BatchNorm statistics when asked to re-estimate them (AdaBN)",
        "hw4lib/ssl/finetune.py",
        'if settings.get("bn_restats") and len(train) > 1:',
        'if False and settings.get("bn_restats") and len(train) > 1:',
        ("tests/ssl/test_ssl_train.py", "-k", "batchnorm_statistics"),
    ),
    Break(
        "byol_views_symmetric",
        "BYOL's second view is drawn like the first (no asymmetric blur and solarisation)",
        "hw4lib/ssl/augment.py",
        "        for blur, sol in zip(cfg.byol_blur_p, cfg.byol_solarize_p)\n",
        "        for blur, sol in zip(cfg.byol_blur_p[:1] * 2, cfg.byol_solarize_p[:1] * 2)\n",
        ("tests/ssl/test_ssl_parts.py", "-k", "asymmetric"),
    ),
    Break(
        "snapshot_late",
        "a budget-curve snapshot holds the backbone one step after its budget",
        "hw4lib/ssl/pretrain.py",
        '                if step in setup.settings.get("snapshots", ()) and d.main:\n',
        '                if step - 1 in setup.settings.get("snapshots", ()) and d.main:\n',
        ("tests/ssl/test_ssl_curve.py", "-k", "snapshot"),
    ),
    Break(
        "notebooks_not_slow",
        "notebook runs are not marked slow, so `make test-fast` runs every notebook",
        "tests/conftest.py",
        'if item.path.suffix == ".ipynb":',
        'if item.path.suffix == ".ipynb_":',
        ("tests/test_packaging.py", "-k", "fast_set"),
    ),
    Break(
        "side_by_side_always",
        "the scheduler runs tasks side by side even where the measured slow-down says it loses",
        "hw4lib/parallel.py",
        "SIDE_BY_SIDE_SLOWDOWN[kind] >= n else n",
        "False else n",
        ("tests/test_parallel.py", "-k", "slowdown"),
    ),
    Break(
        "devices_not_handed_on",
        "a worker on a CUDA device never hands it on: every task sees the first device",
        "hw4lib/parallel.py",
        '        os.environ["CUDA_VISIBLE_DEVICES"] = str(devices.get(timeout=60))',
        '        os.environ["CUDA_VISIBLE_DEVICES"] = str(0)',
        ("tests/test_parallel.py", "-k", "cuda_device"),
    ),
    Break(
        "recorded_without_figure",
        "a recorded DVGO run leaves out its worst views and error maps",
        "hw4lib/report/nerf_recorded.py",
        '    out = save_figure(fig, f"{stem}_views", Path(root))\n',
        "    out = []\n",
        ("tests/tools/test_record_nerf_tool.py",),
    ),
    Break(
        "env_bypassed",
        "results_root reads $HW4_RESULTS itself instead of through hw4lib.env",
        "hw4lib/results.py",
        '    return env.path("HW4_RESULTS")\n',
        '    return Path(__import__("os").environ.get("HW4_RESULTS") or PROJECT_ROOT / "results")'
        "\n",
        ("tests/test_env.py",),
    ),
    Break(
        "env_path_under_root",
        "a path the user sets in an HW4_* variable is taken under the project root, not the cwd",
        "hw4lib/env.py",
        "        return Path(os.environ[name]).expanduser()\n",
        "        return PROJECT_ROOT / os.environ[name]\n",
        ("tests/test_env.py",),
    ),
)


def _backup_path(rel: str) -> Path:
    return BACKUP / rel


LOCK = BACKUP / "pid"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def put_back(backup: Path, dest: Path) -> None:
    """``dest`` gets ``backup``'s bytes and the time now as its modification time: older build
    outputs (ninja compares times) are then out of date, whatever the patch built."""
    shutil.copyfile(backup, dest)
    os.utime(dest)


def claim_and_restore_leftovers() -> list[str]:
    """Become the only running break check (a pid file beside the backups), first putting
    back any file a killed earlier run left patched; returns their names."""
    if LOCK.is_file():
        try:
            pid = int(LOCK.read_text())
        except ValueError:
            pid = 0
        if pid and pid != os.getpid() and _alive(pid):
            raise SystemExit(
                f"another break check is running (pid {pid}); wait for it or stop "
                "it (its patched file is put back when it ends)"
            )
    done = []
    if BACKUP.is_dir():
        for b in sorted(p for p in BACKUP.rglob("*") if p.is_file() and p != LOCK):
            rel = b.relative_to(BACKUP)
            put_back(b, ROOT / rel)
            b.unlink()
            done.append(str(rel))
        shutil.rmtree(BACKUP, ignore_errors=True)
    BACKUP.mkdir()
    LOCK.write_text(str(os.getpid()))
    return done


def release() -> None:
    if not any(p.is_file() and p != LOCK for p in BACKUP.rglob("*")):
        shutil.rmtree(BACKUP, ignore_errors=True)


class Patched:
    """``with Patched(brk):`` the file holds the break; on leaving, the original again."""

    def __init__(self, brk: Break):
        self.brk, self.path = brk, ROOT / brk.file
        self.backup = _backup_path(brk.file)

    def __enter__(self) -> Patched:
        text = self.path.read_text()
        n = text.count(self.brk.old)
        if n != 1:
            raise SystemExit(
                f"break {self.brk.name}: the snippet to replace occurs {n} times "
                f"in {self.brk.file} (expected once); update BREAKS in {__file__}"
            )
        self.backup.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(self.path, self.backup)
        self.path.write_text(text.replace(self.brk.old, self.brk.new))
        return self

    def __exit__(self, *exc) -> None:
        put_back(self.backup, self.path)
        self.backup.unlink()


def run_tests(brk: Break, timeout: float) -> tuple[int, str]:
    env = dict(
        os.environ,
        HW4_PROFILE="smoke",
        PYTHONDONTWRITEBYTECODE="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-x",
        "-q",
        "-rfE",
        "-p",
        "no:cacheprovider",
        "-W",
        "ignore",
        *brk.tests,
    ]
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    lines = [ln for ln in p.stdout.splitlines() if ln.strip()]
    # the first failing test's summary line, else pytest's last line
    failed = [ln for ln in lines if ln.startswith(("FAILED ", "ERROR "))]
    said = failed[0] if failed else (lines[-1] if lines else p.stderr.strip()[-200:])
    return p.returncode, said[:160]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", action="store_true", help="list the breaks and exit")
    ap.add_argument("--only", default="", help="comma-separated break names")
    ap.add_argument("--timeout", type=float, default=900, help="seconds per break's tests")
    a = ap.parse_args(argv)
    for rel in claim_and_restore_leftovers():
        print(f"restored {rel} (left patched by an interrupted run)")
    try:
        return _run(a)
    finally:
        release()


def _run(a: argparse.Namespace) -> int:
    chosen = [b for b in BREAKS if not a.only or b.name in a.only.split(",")]
    unknown = set(filter(None, a.only.split(","))) - {b.name for b in BREAKS}
    if unknown:
        print(f"unknown break(s): {', '.join(sorted(unknown))}; see --list", file=sys.stderr)
        return 2
    if a.list:
        for b in chosen:
            print(f"{b.name:22s} {b.what}\n{'':22s} {b.file}; pytest {' '.join(b.tests)}")
        return 0

    def on_term(signum, frame):  # SIGTERM, SIGHUP: unwind like Ctrl-C, so the file is put back
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even where started ignoring it
    caught, missed = [], []
    try:
        for b in chosen:
            t0 = time.perf_counter()
            with Patched(b):
                rc, last = run_tests(b, a.timeout)
            # 1: tests failed; 2-5 (interrupted, internal error, usage, nothing collected)
            # would say nothing about the break
            ok = rc == 1
            (caught if ok else missed).append(b.name)
            print(
                f"{'caught' if ok else 'MISSED':7s} {b.name:22s} {time.perf_counter() - t0:5.0f}"
                f" s  pytest rc {rc}: {last}",
                flush=True,
            )
    except KeyboardInterrupt:
        print("interrupted: every patched file was put back", file=sys.stderr)
        return 130
    print(
        f"{len(caught)} of {len(chosen)} breaks made a test fail"
        + (f"; not caught: {', '.join(missed)}" if missed else "")
    )
    return 0 if not missed else 1


if __name__ == "__main__":
    sys.exit(main())
