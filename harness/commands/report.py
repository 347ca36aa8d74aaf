"""`harness report [RUN_DIR ...] [--out DIR] [--png]` (and `nox -s report`): every report file."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness import paths, usage
from harness.commands import command, entry

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence

    from harness.records import Record


def parser() -> argparse.ArgumentParser:
    p = command("report")
    p.add_argument("run_dirs", nargs="*", type=Path, metavar="RUN_DIR", help="default latest")
    p.add_argument("--out", type=Path, default=None, help="folder (default: first run)")
    p.add_argument("--png", action="store_true", help="also export each chart as PNG")
    return p


def report(ns: argparse.Namespace) -> int:
    # pandas, plotly and ruptures: only for this command.
    from harness.decide import changepoints  # noqa: PLC0415
    from harness.report import build  # noqa: PLC0415

    def steps(records: Sequence[Record]) -> list[str]:
        return [changepoints.sentence(cp) for cp in changepoints.detect_all(records)]

    try:
        out = build.build_reports(
            ns.run_dirs or [paths.REPORTS / "latest"], ns.out, png=ns.png, steps=steps
        )
    except build.ReportError as exc:
        raise usage.UsageError(str(exc)) from None
    if out.png_note:
        print(out.png_note, file=sys.stderr)
    print(f"report: {out.index_html}\nsummary: {out.markdown}\ncompatibility: {out.compat_html}")
    if out.pngs:
        print(f"png: {len(out.pngs)} charts in {out.pngs[0].parent}")
    return 0


main = entry(parser, report)
