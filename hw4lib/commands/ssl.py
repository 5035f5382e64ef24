"""`hw4 ssl pretrain|finetune|study|table|predict`: problem 2 (BYOL and the A-E study)."""

from __future__ import annotations

import argparse
from dataclasses import fields

from . import add_device, add_profile


def register(sub) -> None:
    """``hw4 ssl`` and its subcommands, each added by a function of its own."""
    p = sub.add_parser("ssl", help="self-supervised pre-training (BYOL) and the A-E study")
    s = p.add_subparsers(dest="ssl", required=True)
    for add in (_add_pretrain, _add_finetune, _add_study, _add_table, _add_predict):
        add(s)


def _add_pretrain(s) -> None:
    pt = s.add_parser(
        "pretrain",
        help="pre-train a ResNet backbone on DIR/mini (BYOL or "
        "supervised); on N processes (GPUs or CPUs): torchrun --nproc_per_node N "
        "-m hw4lib ssl pretrain ...",
    )
    pt.add_argument("--data", required=True, help="folder with mini/train.csv and mini/train/")
    pt.add_argument("--out", required=True, help="run folder (checkpoints, backbone.pt)")
    pt.add_argument("--method", choices=("byol", "supervised"), default="byol")
    budget = pt.add_mutually_exclusive_group()
    budget.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="override the profile's budget: N passes over the corpus",
    )
    budget.add_argument(
        "--steps", type=int, default=None, help="override the profile's budget: N optimizer steps"
    )
    pt.add_argument(
        "--init",
        default=None,
        metavar="PATH|imagenet",
        help="start from a torchvision ResNet state dict instead of a random init; "
        "'imagenet': torchvision's cached ImageNet weights (what the report's "
        "code did; never downloaded)",
    )
    pt.add_argument("--seed", type=int, default=0)
    pt.add_argument("--resume", action="store_true", help="continue an interrupted run")
    pt.add_argument("--force", action="store_true", help="start afresh even if --out holds a run")
    add_profile(pt)
    add_device(pt)
    pt.set_defaults(func=_pretrain)


def _add_finetune(s) -> None:
    ft = s.add_parser("finetune", help="fine-tune setting A-E on DIR/office")
    ft.add_argument("--setting", required=True, choices=tuple("ABCDE"))
    ft.add_argument("--data", required=True, help="folder with office/{train,val}.csv and images")
    ft.add_argument("--out", required=True, help="run folder (best.pt, last.pt, run.json)")
    ft.add_argument(
        "--backbone",
        default=None,
        help="pre-training run folder or ResNet state-dict file (settings B-E)",
    )
    ft.add_argument("--epochs", type=int, default=None)
    ft.add_argument("--seed", type=int, default=0)
    ft.add_argument("--resume", action="store_true")
    ft.add_argument("--force", action="store_true")
    add_profile(ft)
    add_device(ft)
    ft.set_defaults(func=_finetune)


def _add_study(s) -> None:
    st = s.add_parser("study", help="both pre-trainings + A-E for each seed, then the table")
    st.add_argument("--data", required=True)
    st.add_argument("--runs", default=None, help="runs folder (default runs/<profile>/ssl)")
    st.add_argument("--seeds", default=None, help="comma-separated seeds (default: profile's)")
    st.add_argument("--force", action="store_true")
    st.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="worker processes running independent jobs side by side, sharing the "
        "threads (default: one per GPU with several GPUs, else 1: measured faster on a CPU)",
    )
    add_profile(st)
    add_device(st)
    st.set_defaults(func=_study)


def _add_table(s) -> None:
    tb = s.add_parser("table", help="print the A-E table from finished fine-tuning runs")
    tb.add_argument("--runs", required=True, help="folder holding fine-tuning run folders")
    tb.set_defaults(func=_table)


def _add_predict(s) -> None:
    pr = s.add_parser("predict", help="classify a csv of images (the hw4_2.sh contract)")
    pr.add_argument("--run", required=True, help="fine-tuning run folder (or its best.pt)")
    pr.add_argument("--csv", required=True, help="input csv: id,filename[,label]")
    pr.add_argument("--images", required=True, help="folder holding the csv's filenames")
    pr.add_argument("--out", required=True, help="output csv: id,filename,label")
    pr.add_argument("--workers", type=int, default=0)
    add_device(pr)
    pr.set_defaults(func=_predict)


def _request(cls: type, a: argparse.Namespace):
    """The request the command line makes: each field of ``cls`` from the option of its name
    (the others keep their defaults)."""
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in vars(a).items() if k in names})


def _pretrain(a) -> int:
    from ..ssl.distributed import is_main_process
    from ..ssl.pretrain_run import pretrain_run
    from ..ssl.request import PretrainRequest

    s = pretrain_run(_request(PretrainRequest, a))
    knn = s.get("knn_final")
    if not is_main_process():  # under torchrun: rank 0 reports
        return 0
    print(
        f"{a.method} pre-training: {s['steps']} steps ({s['epochs']:g} epochs), final loss "
        f"{s['history'][-1]['loss']:.4f}, kNN accuracy "
        f"{'-' if knn is None else f'{knn:.3f}'}; backbone: {s['backbone']}"
    )
    return 0


def _finetune(a) -> int:
    from ..ssl.finetune_run import finetune_run
    from ..ssl.request import FinetuneRequest

    s = finetune_run(_request(FinetuneRequest, a))
    print(
        f"setting {a.setting}: best val accuracy {s['best_val_acc']:.3f} (epoch "
        f"{s['best_epoch']}), final {s['final_val_acc']:.3f}; model: {a.out}/best.pt"
    )
    return 0


def _study(a) -> int:
    from ..errors import UserError
    from ..ssl.study import run_study

    seeds = None
    if a.seeds:
        try:
            seeds = tuple(int(x) for x in a.seeds.split(",") if x.strip())
        except ValueError:
            raise UserError(
                f"--seeds {a.seeds!r}: give comma-separated integers, e.g. 0,1,2"
            ) from None
    df = run_study(
        a.data,
        a.runs,
        profile=a.profile,
        seeds=seeds,
        device=a.device,
        force=a.force,
        workers=a.jobs,
    )
    print(_formatted(df, a.data))
    return 0


def _formatted(rows, where: str) -> str:
    """The report layer's A-E table (the one builder) as text."""
    from ..report import ssl_report

    return ssl_report.format_table(ssl_report.ae_table(rows, data=f"fine-tuning runs on {where}"))


def _table(a) -> int:
    from pathlib import Path

    from ..errors import UserError
    from ..ssl.study import table

    if not Path(a.runs).is_dir():
        raise UserError(f"{a.runs}: runs folder not found")
    df = table(a.runs)
    if df.empty:
        raise UserError(
            f"{a.runs}: no finished fine-tuning runs (run.json) found; run "
            "`hw4 ssl finetune` or `hw4 ssl study` first"
        )
    print(_formatted(df, f"the data of {a.runs}"))
    return 0


def _predict(a) -> int:
    from ..config import resolve_device
    from ..ssl.predict import predict

    r = predict(a.run, a.csv, a.images, a.out, device=resolve_device(a.device), workers=a.workers)
    msg = f"wrote {r['rows']} predictions to {r['out']}"
    if "accuracy" in r:
        msg += f" (accuracy against the csv's labels: {r['accuracy']:.3f})"
    print(msg)
    return 0
