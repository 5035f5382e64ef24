"""`hw4 nerf train|render|eval`: DVGO novel view synthesis (Problem 1)."""

from __future__ import annotations

from . import add_device, add_profile


def register(sub) -> None:
    p = sub.add_parser("nerf", help="DVGO: train a scene, render views, evaluate renders")
    ns = p.add_subparsers(dest="nerf_cmd", required=True)

    t = ns.add_parser("train", help="train coarse + fine DVGO on a Blender-format scene")
    t.add_argument("--data", required=True, help="scene folder with transforms_train.json")
    t.add_argument("--out", required=True, help="run directory (checkpoints, models)")
    add_profile(t)
    t.add_argument(
        "--stepsize",
        type=float,
        default=None,
        help="fine-stage sampling step in voxels (default: the profile's, 0.5)",
    )
    t.add_argument("--fine-voxels", default=None, help="fine grid size: a count or e.g. 180^3")
    t.add_argument("--background", choices=("white", "black"), default=None)
    t.add_argument("--downscale", type=float, default=1.0, help="divide training image size by K")
    add_device(t)
    t.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.pt")
    t.set_defaults(func=_train)

    r = ns.add_parser("render", help="render every frame of a transforms json to PNGs")
    r.add_argument("--run", required=True)
    r.add_argument("--transforms", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--size", type=int, default=None, help="square output size in pixels")
    r.add_argument("--depth", action="store_true", help="also write depth maps (OUT/depth)")
    r.add_argument("--video", action="store_true", help="also write an orbit video (OUT/orbit)")
    add_device(r)
    r.set_defaults(func=_render)

    e = ns.add_parser("eval", help="PSNR / SSIM / LPIPS(vgg) of rendered vs ground-truth images")
    e.add_argument("--pred", required=True)
    e.add_argument("--gt", required=True)
    e.add_argument("--background", choices=("white", "black"), default="white")
    e.add_argument("--json", default=None, help="write the per-image and mean metrics here")
    add_device(e)
    e.set_defaults(func=_eval)


def _train(a) -> int:
    from ..nerf.run import TrainRequest, train_run

    req = TrainRequest(
        a.data,
        a.out,
        a.profile,
        stepsize=a.stepsize,
        fine_voxels=a.fine_voxels,
        device=a.device,
        background=a.background,
        downscale=a.downscale,
        resume=a.resume,
    )
    res = train_run(req)
    t = res.get("timings", {})
    state = "reused finished run" if res.get("reused") else "trained"
    print(
        f"{state} {a.out}: coarse {t.get('coarse_s', 0):.0f} s + fine {t.get('fine_s', 0):.0f} s,"
        f" val PSNR {res.get('val_psnr', float('nan')):.2f} dB"
    )
    return 0


def _render(a) -> int:
    from ..nerf.images import render_transforms

    paths = render_transforms(
        a.run, a.transforms, a.out, size=a.size, depth=a.depth, video=a.video, device=a.device
    )
    print(f"wrote {len(paths)} files to {a.out}")
    return 0


def _eval(a) -> int:
    from ..metrics import evaluate_folders
    from ..metrics.evaluate import format_summary

    res = evaluate_folders(a.pred, a.gt, background=a.background, json_out=a.json, device=a.device)
    print(format_summary(res))
    return 0
