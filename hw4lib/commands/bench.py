"""`hw4 bench grid|nerf|ssl`: speed benchmarks printing ratios measured in one run."""

from __future__ import annotations

from . import add_device, add_profile


def register(sub) -> None:
    p = sub.add_parser("bench", help="benchmarks: grid lookup, DVGO training steps, SSL loader")
    bs = p.add_subparsers(dest="bench", required=True)
    g = bs.add_parser(
        "grid", help="trilinear lookup fwd+bwd vs F.grid_sample (128^3 x 13, 500k pts)"
    )
    g.add_argument("--res", type=int, default=128)
    g.add_argument("--channels", type=int, default=13)
    g.add_argument("--points", type=int, default=500_000)
    g.add_argument("--repeats", type=int, default=5)
    add_device(g)
    g.set_defaults(func=lambda a: _call("hw4lib.nerf.bench", "bench_grid", a))
    n = bs.add_parser(
        "nerf",
        help="rays/s and points/s of coarse and fine training steps, and a fine step's breakdown",
    )
    add_profile(n)
    n.add_argument("--repeats", type=int, default=5)
    add_device(n)
    n.set_defaults(func=lambda a: _call("hw4lib.nerf.bench", "bench_nerf", a))
    s = bs.add_parser("ssl", help="BYOL step images/s: real loader vs in-memory tensors")
    add_device(s)
    s.set_defaults(func=lambda a: _call("hw4lib.ssl.bench", "bench_ssl", a))


def _call(module: str, fn: str, args) -> int:
    import importlib

    return getattr(importlib.import_module(module), fn)(args) or 0
