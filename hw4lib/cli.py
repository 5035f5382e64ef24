"""The ``hw4`` command line: one subcommand per job, each a thin call into the library.

Subcommands live in :mod:`hw4lib.commands` (one module each); a :class:`UserError` anywhere
becomes one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import UserError

# group name -> module in hw4lib.commands providing ``register(subparsers)``
GROUPS = ("data", "nerf", "ssl", "bench", "weights", "report", "env")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse already exits 2; keep it to one line
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="hw4",
        description="Reproduce DLCV HW4: DVGO novel view synthesis and "
        "BYOL self-supervised pre-training. Each subcommand has --help.",
    )
    sub = p.add_subparsers(dest="group", required=True, parser_class=_Parser)
    for g in GROUPS:
        mod = importlib.import_module(f"hw4lib.commands.{g}")
        mod.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc = args.func(args)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
