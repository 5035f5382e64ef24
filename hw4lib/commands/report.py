"""`hw4 report`: run the numbered notebooks with papermill."""

from __future__ import annotations

import sys

from . import add_device, add_profile


def register(sub) -> None:
    p = sub.add_parser("report", help="run the notebooks 01-06 headlessly into reports/<profile>/")
    add_profile(p)
    p.add_argument("--only", default=None, help="comma-separated notebook ids, e.g. 01,03")
    p.add_argument("--keep-going", action="store_true", help="run the rest after a failure")
    p.add_argument(
        "--data",
        default=None,
        help="course-layout data (hotdog/, mini/, office/); default: generated data",
    )
    p.add_argument("--force", action="store_true", help="retrain even if results exist")
    p.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="notebook chains at once (01-03 DVGO, 04-05 SSL; then 06): default 2 "
        "on a CPU with 2+ cores (measured faster) or with 2+ GPUs, 1 = every notebook in order",
    )
    p.add_argument(
        "--publish",
        action="store_true",
        help="after a run without failures, copy its figures and tables into the "
        "committed figures/ (with report.html), and the executed notebooks, outputs kept, "
        "into notebooks/ (quick profile only)",
    )
    add_device(p)
    p.set_defaults(func=run)


def run(a) -> int:
    from ..config import profile_name
    from ..errors import UserError
    from ..report.runner import reports_dir, run_report
    from ..report.tables import figures_dir
    from ..results import results_root

    profile = profile_name(a.profile)
    if a.jobs is not None and a.jobs < 1:
        raise UserError(f"--jobs {a.jobs}: must be at least 1")
    if a.publish and profile != "quick":
        raise UserError(
            f"--publish: figures/ holds the quick profile's figures, not {profile}'s; "
            f"drop --publish (they are in reports/{profile}/figures/)"
        )
    done, failures = run_report(
        profile, a.only, a.keep_going, a.data, a.device, a.force, jobs=a.jobs
    )
    out = reports_dir(profile)
    print(f"executed notebooks: {out}")
    if (out / "report.html").exists():
        print(f"report:             {out / 'report.html'}")
    if (out / "report.pdf").exists():
        print(f"report (PDF):       {out / 'report.pdf'}")
    print(f"figures and tables: {figures_dir(profile)}")
    print(f"results (json):     {results_root() / profile}")
    if failures:
        print(f"{len(failures)} notebook(s) failed:", file=sys.stderr)
        for f in failures:
            print(f"  {f.line()}", file=sys.stderr)
        return 1
    if a.publish:
        from .. import PROJECT_ROOT
        from ..report.catalog import publish
        from ..report.published import publish_notebooks, publish_report_page
        from ..report.tables import PUBLISHED

        copied = publish(figures_dir(profile), PUBLISHED)
        print(f"published:          {len(copied)} files to {PUBLISHED}")
        # the executed notebooks, outputs kept, cleaned of widget state and machine paths
        nbs = publish_notebooks(out, PROJECT_ROOT / "notebooks", profile)
        print(f"published:          {len(nbs)} executed notebooks to notebooks/")
        for f in publish_report_page(out, PUBLISHED):
            print(f"published:          {f.relative_to(PROJECT_ROOT)}")
    return 0
