"""Record a DVGO run measured on real data (e.g. 800 px on a CPU) for the notebooks to show.

    hw4 nerf train  --data SCENE --out RUN --profile cpu800
    hw4 nerf render --run RUN --transforms SCENE/transforms_val.json --out PRED   # timed
    hw4 nerf eval   --pred PRED --gt SCENE/val --json EVAL.json
    python tools/record_nerf.py --name mic800 --run RUN --eval EVAL.json --render-seconds S \\
        --data "mic_800: real nerf_synthetic mic, 800 px, 50 train / 50 val views" \\
        --command "hw4 nerf train --profile cpu800 ...; render; eval"

writes ``figures/recorded/nerf_<name>`` (summary), ``nerf_<name>_views`` (every view, worst
first) and ``nerf_<name>_views.png`` (the worst views and their error maps), each with its
provenance (this commit, today, this CPU). Bad input: one line, exit 2, nothing written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from hw4lib.errors import UserError
from hw4lib.report.nerf_recorded import record_nerf
from hw4lib.report.recorded import RECORDED


def _json(path: Path, what: str, fix: str) -> dict:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path}: cannot read {what} ({type(e).__name__}); {fix}") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: not {what}; {fix}")
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--name", required=True, help="recorded as figures/recorded/nerf_<name>*")
    p.add_argument("--run", type=Path, required=True, help="the finished `hw4 nerf train` run")
    p.add_argument("--eval", type=Path, required=True, help="`hw4 nerf eval --json` of its renders")
    p.add_argument("--render-seconds", type=float, required=True, help="`hw4 nerf render` time")
    p.add_argument("--data", required=True, help="the data, named for a reader")
    p.add_argument("--command", required=True, help="what was run, for the provenance")
    p.add_argument("--commit", default=None, help="the code that trained it (default: this one)")
    p.add_argument("--pred", type=Path, default=None, help="renders (default: the eval's folder)")
    p.add_argument("--gt", type=Path, default=None, help="ground truth (default: the eval's)")
    p.add_argument("--root", type=Path, default=RECORDED, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    try:
        done = _json(a.run / "done.json", "a finished run's done.json", "finish the run first")
        ev = _json(a.eval, "`hw4 nerf eval --json` output", "rerun `hw4 nerf eval --json`")
        if not {"images", "mean", "n", "pred_dir", "gt_dir", "background"} <= set(ev):
            raise UserError(f"{a.eval}: not `hw4 nerf eval --json` output; rerun it")
        ev = {**ev, **{k: str(v) for k, v in (("pred_dir", a.pred), ("gt_dir", a.gt)) if v}}
        for key, opt in (("pred_dir", "--pred"), ("gt_dir", "--gt")):
            if not Path(ev[key]).is_dir():
                raise UserError(f"{ev[key]}: no such folder (from {a.eval}); pass {opt} FOLDER")
        paths = record_nerf(
            a.name, ev, done, a.render_seconds, a.data, a.command, root=a.root, commit=a.commit
        )
        print("\n".join(map(str, paths)))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
