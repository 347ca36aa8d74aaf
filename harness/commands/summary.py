"""`harness summary RUN_DIR`: a run's console summary; exit 1 when a cell failed."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness import usage
from harness.commands import COMMANDS
from harness.report.console import finish_run

if TYPE_CHECKING:
    from collections.abc import Sequence


def parser(prog: str = "harness summary") -> usage.Parser:
    p = usage.Parser(prog=prog, description=COMMANDS["summary"])
    p.add_argument("run_dir", type=Path)
    return p


def summary(run_dir: Path) -> int:
    if not run_dir.is_dir():
        raise usage.UsageError(f"{run_dir}: no such run folder")
    return finish_run(run_dir)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return usage.run(lambda: summary(parser().parse_args(args).run_dir))
