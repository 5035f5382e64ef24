"""Judge the SSL recipe on several data sets, never one: make the variants of a Problem 2 data
root, then run the budget curve (A, C, E against BYOL's steps, over seeds) on each.

    python tools/ssl_variants.py --base ../shared/data/p2_dev --out results/ssl_variants \\
        [--variants p2_dev,mini60,resplit1,generated] [--budgets 150,450,1000] [--seeds 0,1,2] \\
        [--record figures/recorded] [--merge figures/recorded]

Variants: the base as is; ``mini60``: its pre-training corpus cut to 60 images a class (the
size of a set that reversed the ordering); ``resplit<k>``: its downstream images split again
with seed k (its BYOL runs are the base's: the same ``mini``, so they are reused); ``photos<k>``:
the downstream drawn from k of ``mini``'s own classes (photos of the domain BYOL saw; the base's
BYOL runs); ``heldout<k>``: photosK's downstream with its k classes taken out of ``mini`` (photos
of classes BYOL never saw; its own BYOL runs); ``generated``: the profile's generated corpora.
Each variant's rows go to ``<out>/<variant>.json`` as they finish; a rerun reuses finished runs
and goes on. ``--finetune-lr LR`` fine-tunes at another lr than the profile's (BYOL's runs are
shared) into the curve ``<variant>_lr<LR>``.
``--merge DIR`` adds an earlier curve's points at budgets this run lacks (``DIR/<variant>.json``
or ``DIR/ssl_curve_<variant>.json``, e.g. the recorded one): a longer run extends the curve,
and the points both runs have must agree.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import replace
from pathlib import Path

from hw4lib.config import get_profile
from hw4lib.data.generated import course_root
from hw4lib.data.variants import cut_mini, heldout_office, photos_office, resplit_office
from hw4lib.errors import UserError
from hw4lib.report.datadesc import ssl_curve_data
from hw4lib.report.ssl_curve import record_curve
from hw4lib.ssl.curve import budget_curve, lr_suffix, merge_rows, summarize, with_finetune_lr


def on_base_pretraining(name: str) -> bool:
    """Whether variant ``name`` changes only ``office/``, so its BYOL runs are the base's."""
    return name.startswith(("resplit", "photos"))


def variant_root(name: str, base: Path, out: Path, profile: str) -> Path:
    """The data root of variant ``name`` of ``base`` (made under ``out/data`` when needed)."""
    if name == base.name:
        return base
    if name == "generated":
        return course_root(None, profile, ("mini", "office"))
    m = re.fullmatch(r"(mini|resplit|photos|heldout)(\d+)", name)
    if m is None:
        raise UserError(
            f"--variants {name!r}: unknown variant; use {base.name}, miniN, resplitK, photosK, "
            "heldoutK or generated"
        )
    kind, n = m.group(1), int(m.group(2))
    dest = out / "data" / f"{base.name}-{name}"
    if kind in ("photos", "heldout"):
        return (photos_office if kind == "photos" else heldout_office)(base, dest, n, seed=0)
    return cut_mini(base, dest, n, seed=0) if kind == "mini" else resplit_office(base, dest, n)


def command(a: argparse.Namespace, name: str) -> str:
    return (
        f"python tools/ssl_variants.py --base {a.base.name} --variants {name} "
        f"--budgets {a.budgets} --seeds {a.seeds}"
        + (f" --finetune-lr {a.finetune_lr:g}" if a.finetune_lr is not None else "")
        + (f" --about '{a.about}'" if a.about else "")
    )


def suffix(a: argparse.Namespace) -> str:
    """What this run's fine-tuning lr adds to folder and curve names ('' for the profile's)."""
    return "" if a.finetune_lr is None else lr_suffix(a.finetune_lr)


def run_minutes(a: argparse.Namespace, name: str) -> float:
    """Minutes the variant's runs trained (its shared pre-trainings and this run's fine-tunings,
    not those at another lr), from run.json."""
    runs = [a.out / "runs" / name]
    if on_base_pretraining(name):
        runs.append(a.out / "runs" / a.base.name)
    secs = 0.0
    for r in runs:
        for f in r.rglob("run.json"):
            run = f.parent.name
            mine = run.endswith(suffix(a)) if suffix(a) else "_lr" not in run
            if run.startswith("pretrain") or (run.startswith("finetune") and mine):
                secs += json.loads(f.read_text()).get("seconds") or 0.0
    return secs / 60


def earlier_curve(folder: Path, name: str, profile: str) -> dict:
    """The curve of ``name`` recorded in ``folder`` by an earlier run (``--merge``)."""
    for f in (folder / f"{name}.json", folder / f"ssl_curve_{name}.json"):
        if f.is_file():
            doc = json.loads(f.read_text())
            if doc.get("profile") != profile:
                raise UserError(
                    f"{f}: a curve of profile {doc.get('profile')!r}, this run is {profile!r}; "
                    "merge curves of one profile"
                )
            return doc | {"file": str(f)}
    raise UserError(
        f"--merge {folder}: no {name}.json or ssl_curve_{name}.json there; give the --out or "
        "--record folder of the earlier curve"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--variants", default=None)
    ap.add_argument("--budgets", default="150,450,1000")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--profile", default=None)
    ap.add_argument(
        "--about",
        default="",
        help="what the base data is, for the records, e.g. 'Tiny-ImageNet -> PACS cartoon'",
    )
    ap.add_argument(
        "--merge",
        type=Path,
        default=None,
        metavar="DIR",
        help="add an earlier curve's points at budgets this run lacks (its --out or --record "
        "folder); points both have must agree",
    )
    ap.add_argument(
        "--record",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write each curve, with its provenance, to DIR/ssl_curve_<variant>.{csv,json} "
        "(the published ones: figures/recorded)",
    )
    ap.add_argument(
        "--finetune-lr",
        type=float,
        default=None,
        metavar="LR",
        help="fine-tune A, C and E at this lr instead of the profile's (BYOL's runs are shared; "
        "the curve is <variant>_lr<LR>)",
    )
    a = ap.parse_args(argv)
    profile = get_profile(a.profile)
    prof = profile.name
    if a.finetune_lr is not None:  # checked before any variant is made
        profile = replace(profile, ssl=with_finetune_lr(profile.ssl, a.finetune_lr))
    names = (a.variants or f"{a.base.name},mini60,resplit1,generated").split(",")
    budgets = tuple(int(b) for b in a.budgets.split(","))
    seeds = tuple(int(s) for s in a.seeds.split(","))
    a.out.mkdir(parents=True, exist_ok=True)
    for name in names:
        root = variant_root(name, a.base.resolve(), a.out.resolve(), prof)
        # pre-train (or reuse) on the base, under its runs
        shared = on_base_pretraining(name)
        curve = name + suffix(a)
        # read before training, so that a wrong folder is said at once
        earlier = earlier_curve(a.merge, curve, prof) if a.merge else None
        rows = budget_curve(
            root,
            a.out / "runs" / name,
            budgets,
            seeds,
            prof,
            progress=False,
            pretrain_data=a.base.resolve() if shared else None,
            pretrain_runs=a.out / "runs" / a.base.name if shared else None,
            finetune_lr=a.finetune_lr,
        )
        doc = {"variant": curve, "set": name, "profile": prof}
        doc["finetune_lr"] = profile.ssl.finetune_lr
        doc["rows"] = rows
        if earlier:
            doc["rows"] = merge_rows(rows, earlier["rows"])
            keep = ("file", "command", "commit", "date", "cpu", "minutes", "merged_from")
            doc["merged_from"] = {k: earlier[k] for k in keep if k in earlier}
        doc["summary"] = summarize(doc["rows"])
        (a.out / f"{curve}.json").write_text(json.dumps(doc, indent=1))
        if a.record:
            about = "generated corpora" if name == "generated" else a.about
            data = ssl_curve_data(profile, root, about)
            minutes = run_minutes(a, name) + (earlier or {}).get("minutes", 0.0)
            how = command(a, name) + (f" --merge {a.merge}" if earlier else "")
            record_curve(doc, data, how, minutes, a.record)
        for r in doc["summary"]:
            print(
                f"{curve:<18} {r['byol_steps']:>5} steps {r['byol_minutes']:6.2f} min  "
                + "  ".join(f"{x} {r[x]:.3f}±{r[x + '_sd']:.3f}" for x in ("A", "C", "E"))
                + f"  C>A {r['C>A']}/{r['seeds']}  E>A {r['E>A']}/{r['seeds']}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:  # the project's contract: one line, exit 2, nothing overwritten
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
