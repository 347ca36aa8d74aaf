"""`harness cells [--profile P] [--models ...] [--stacks ...]`: the cells a bench would run."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness import paths, usage
from harness.commands import COMMANDS
from harness.commands.bench import bench_parser
from harness.config import matrix as matrix_mod

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence


def parser(prog: str = "harness cells") -> usage.Parser:
    p = usage.Parser(prog=prog, description=COMMANDS["cells"], parents=[bench_parser()])
    p.add_argument("--matrix", type=Path, default=paths.DEFAULT_MATRIX)
    return p


def cells(ns: argparse.Namespace) -> int:
    m = matrix_mod.load(ns.matrix)
    try:
        selected = m.cells(ns.profile, models=ns.models, stacks=ns.stacks)
    except matrix_mod.MatrixError as exc:
        raise usage.UsageError(str(exc)) from None
    for cell in selected:
        print(f"{cell.stack.id} {cell.id}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return usage.run(lambda: cells(parser().parse_args(args)), matrix_mod.MatrixError)
