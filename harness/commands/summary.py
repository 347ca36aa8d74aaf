"""`harness summary RUN_DIR`: a run's console summary; exit 1 when a cell failed."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness import usage
from harness.commands import command, entry
from harness.report.console import finish_run

if TYPE_CHECKING:
    import argparse


def parser() -> argparse.ArgumentParser:
    p = command("summary")
    p.add_argument("run_dir", type=Path)
    return p


def summary(ns: argparse.Namespace) -> int:
    if not ns.run_dir.is_dir():
        raise usage.UsageError(f"{ns.run_dir}: no such run folder")
    return finish_run(ns.run_dir)


main = entry(parser, summary)
