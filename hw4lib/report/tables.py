"""Tables and figure files: where they go and how they are written (CSV, Markdown, LaTeX)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import PROJECT_ROOT, env


def figures_dir(profile: str) -> Path:
    """``reports/<profile>/figures``, where a run writes its figures and tables (``$HW4_FIGURES``
    overrides). The committed ``figures/`` changes only by :func:`.catalog.publish`
    (``hw4 report --publish``), so a run never dirties the working tree."""
    d = env.path("HW4_FIGURES") or env.path("HW4_REPORTS") / profile / "figures"
    d.mkdir(parents=True, exist_ok=True)
    return d


#: the committed figures and tables (the quick profile's, refreshed by ``hw4 report --publish``)
PUBLISHED = PROJECT_ROOT / "figures"


def to_markdown(df: pd.DataFrame, floatfmt: str = "{:.3f}") -> str:
    """A GitHub Markdown table (no extra dependency)."""

    def cell(v) -> str:
        if isinstance(v, float):
            return "—" if pd.isna(v) else floatfmt.format(v)
        return str(v)

    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def save_table(
    df: pd.DataFrame,
    name: str,
    out_dir: Path,
    data: str | None = None,
    floatfmt: str = "{:.3f}",
) -> list[Path]:
    """Write ``name.csv``, ``name.md`` and ``name.tex``; returns the paths. ``data`` (else
    ``df.attrs["data"]``, set by the report's table builders) names the data and scale the
    numbers were measured on: the Markdown opens with it, the LaTeX carries it as a comment."""
    data = data or df.attrs.get("data")
    if not data:
        raise ValueError(f"{name}: name the data the table shows (data=...)")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.{ext}" for ext in ("csv", "md", "tex")]
    df.to_csv(paths[0], index=False)
    paths[1].write_text(f"Data: {data}\n\n" + to_markdown(df, floatfmt))
    fmt = {
        c: (lambda v: floatfmt.format(v) if pd.notna(v) else "--")
        for c in df.columns
        if pd.api.types.is_float_dtype(df[c])
    }
    tex = df.to_latex(index=False, formatters=fmt, na_rep="--", escape=True)
    paths[2].write_text(f"% data: {data}\n" + tex)
    return paths


def save_figure(fig, name: str, out_dir: Path, pdf: bool = False) -> list[Path]:
    """Save a matplotlib figure as PNG (and PDF for the paper-like ones)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.png"]
    fig.savefig(paths[0], dpi=120, bbox_inches="tight")
    if pdf:
        paths.append(out_dir / f"{name}.pdf")
        fig.savefig(paths[1], bbox_inches="tight")
    return paths
