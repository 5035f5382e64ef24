"""Record the A-E study measured on real photos for the notebooks to show.

    hw4 ssl study --data ../shared/data/p2_dev --runs RUNS --seeds 0,1,2
    python tools/record_ssl_study.py --name p2_dev --runs RUNS \\
        --data "p2_dev: Tiny-ImageNet 64 classes -> PACS cartoon, 7 classes" \\
        --command "hw4 ssl study --data p2_dev --seeds 0,1,2"

or, from finished fine-tunings made elsewhere (a budget curve's A, C and E and a supervised
control's B and D), one ``--take SETTING=PATTERN`` each (``{seed}`` in the pattern; the five
run.json are copied into the ``--runs`` folder, which must not exist, as one study):

    python tools/record_ssl_study.py --name p2_dev_byol2000 --runs results/asm/p2_dev \\
        --seeds 0,1,2 --take A='results/ssl_long*/runs/p2_dev/seed{seed}/finetune_A' ... \\
        --data ... --command ...

writes ``figures/recorded/ssl_ae_<name>`` (the A-E table over seeds, beside the report's) and
``ssl_ae_<name>.png`` (each setting's loss curves, seed 0), with provenance (this commit, today,
this CPU, the minutes the runs trained). Bad input: one line, exit 2, nothing written.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hw4lib.errors import UserError
from hw4lib.report.recorded import RECORDED
from hw4lib.report.ssl_recorded import assemble_study, record_study
from hw4lib.ssl.ae import AE_SETTINGS
from hw4lib.ssl.study import table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--name", required=True, help="recorded as figures/recorded/ssl_ae_<name>")
    p.add_argument("--runs", type=Path, required=True, help="the `hw4 ssl study --runs` folder")
    p.add_argument("--data", required=True, help="the data, named for a reader")
    p.add_argument("--command", required=True, help="what was run, for the provenance")
    p.add_argument(
        "--take",
        action="append",
        default=[],
        metavar="SETTING=PATTERN",
        help="assemble --runs from this setting's runs elsewhere ({seed} in the pattern)",
    )
    p.add_argument("--seeds", default="0", help="with --take: the seeds to assemble")
    p.add_argument("--root", type=Path, default=RECORDED, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    try:
        if a.take:
            takes = dict(t.split("=", 1) for t in a.take if "=" in t)
            if len(takes) != len(a.take) or set(takes) - set(AE_SETTINGS):
                raise UserError(f"--take {a.take}: give SETTING=PATTERN, SETTING one of A-E")
            if a.runs.exists():
                raise UserError(f"--runs {a.runs}: exists; --take assembles into a new folder")
            try:
                seeds = tuple(int(x) for x in a.seeds.split(","))
            except ValueError:
                raise UserError(f"--seeds {a.seeds!r}: give seeds as 0,1,2") from None
            assemble_study(takes, seeds, a.runs)
        rows = table(a.runs)
        missing = [s for s in AE_SETTINGS if s not in set(rows["setting"])]
        if missing:
            raise UserError(
                f"{a.runs}: no finished fine-tuning run of setting {', '.join(missing)}; "
                "finish the study (`hw4 ssl study --runs` this folder) first"
            )
        print("\n".join(map(str, record_study(a.name, a.runs, rows, a.data, a.command, a.root))))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
