"""``hw4`` subcommand groups: each module has ``register(subparsers)``; ``cli`` wires them.

Each command imports the library it runs inside its function, so ``hw4 --help`` and the light
commands never pay for torch, matplotlib or LPIPS.
"""

from __future__ import annotations

import argparse

from ..config import DEVICES, PROFILES


def add_profile(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--profile",
        default=None,
        help=f"one of {', '.join(PROFILES)} (default: $HW4_PROFILE or quick); "
        "checked when the command runs",
    )


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICES)}")
