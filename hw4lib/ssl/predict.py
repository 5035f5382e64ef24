"""``hw4 ssl predict``: a fine-tuned run's best model classifies a csv of images (the hw4_2
contract: ``id,filename,label`` in the input's row order)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch

from ..errors import UserError
from ..results import atomic_write_text
from . import checkpoint as ckpt
from .augment import image_input
from .datasets import ImageSet, make_loader
from .models import make_classifier


def predict(
    run: str | Path,
    csv_path: str | Path,
    image_dir: str | Path,
    out_csv: str | Path,
    device: str = "cpu",
    workers: int = 0,
) -> dict:
    """Classify every row of ``csv_path`` with a fine-tuned run's best model; write
    ``id,filename,label`` (class names) in the input's row order. Returns counts (and the
    accuracy when the csv has labels)."""
    run = Path(run)
    best = run / "best.pt" if run.is_dir() else run
    if not best.is_file():
        raise UserError(
            f"{best}: no fine-tuned model here; run `hw4 ssl finetune --out {run}` "
            "first or point --run (or $HW4_SSL_RUN) at a fine-tuning run folder"
        )
    state = ckpt.load(best)
    if not {"model", "classes", "arch", "image_size"} <= set(state):
        raise UserError(f"{best}: not a fine-tuned model checkpoint (from `hw4 ssl finetune`)")
    ds = ImageSet(csv_path, image_dir, state["image_size"], classes=state["classes"])
    model = make_classifier(
        state["arch"], len(state["classes"]), head_norm=state.get("head_norm", False)
    )
    model.load_state_dict(state["model"])
    model.to(device).eval()
    # decode everything first so a broken image fails before anything is written
    loader = make_loader(ds, 64, shuffle=False, drop_last=False, workers=workers, device=device)
    preds = []
    with torch.no_grad():
        for x, _ in loader:
            preds.append(model(image_input(x.to(device))).argmax(1).cpu())
    pred = torch.cat(preds)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["id", "filename", "label"])
    for r, p in zip(ds.rows, pred.tolist()):
        w.writerow([r.id, r.filename, state["classes"][p]])
    atomic_write_text(out_csv, buf.getvalue())
    out = {"rows": len(ds), "out": str(out_csv)}
    if (ds.labels >= 0).all():
        out["accuracy"] = float((pred == ds.labels).float().mean())
    return out
