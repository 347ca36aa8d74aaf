"""`harness publish [RUN_DIR ...] --out SITE_DIR` (and `nox -s publish`): the static site, from the
run folders given (copied in and merged into the store) or the store's newest run of each stack;
history always from the whole store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness import paths, usage
from harness.commands import command, entry

if TYPE_CHECKING:
    import argparse


def parser() -> argparse.ArgumentParser:
    p = command("publish")
    p.add_argument(
        "run_dirs", nargs="*", type=Path, metavar="RUN_DIR",
        help="runs to publish (default: the results store's newest run of each stack)",
    )  # fmt: skip
    p.add_argument("--out", type=Path, required=True, help="the site's folder")
    p.add_argument("--store", type=Path, help="results store (default $HARNESS_STORE or reports/store)")  # fmt: skip  # noqa: E501
    return p


def publish(ns: argparse.Namespace) -> int:
    # pandas, plotly, DuckDB and ruptures: only for this command.
    from harness.decide import changepoints  # noqa: PLC0415
    from harness.report import build, compat, history, site, store  # noqa: PLC0415
    from harness.report.tables import to_frame  # noqa: PLC0415

    root: Path = ns.store or paths.store_dir()
    out: Path = ns.out
    try:
        out.mkdir(parents=True, exist_ok=True)
        if ns.run_dirs:
            copied = site.copy_runs(ns.run_dirs, out)
            store.merge(ns.run_dirs, root)
            records = build.load_records(copied)
            raw = [c / "raw" for c in copied]
            frame = to_frame(records)
        else:
            rows = site.latest_rows(root)
            records, raw, frame = site.records_of(rows), [], rows
        steps = changepoints.detect_all(records)
        said = [changepoints.sentence(s) for s in steps]
        # One compatibility page, the site's: the dashboard in latest/ links up to it.
        page = compat.build_compat(records, out, raw_dirs=raw)
        build.write_reports(records, frame, out / site.LATEST, steps=said, compat_page=page)
        marks = [
            (cp.model, cp.scenario, cp.metric,
             cp.first_versions.transformers if cp.first_versions else cp.first_release,
             f"{cp.metric}: {cp.before} -> {cp.after}")
            for cp in steps
        ]  # fmt: skip
        history.build_history(root, out, marks)
        index = site.write_landing(out, root, said)
    except (build.ReportError, site.SiteError, store.StoreError, OSError) as exc:
        raise usage.UsageError(str(exc)) from None
    print(f"site: {index}\ncompatibility: {page}\nhistory: {out / 'history.html'}")
    print(f"change points: {len(steps)}; open {index.as_uri()}")
    return 0


main = entry(parser, publish)
