"""`harness validate [MATRIX]`: load matrix.yaml with every check; one line per outcome."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness import paths, usage
from harness.commands import COMMANDS
from harness.config import matrix as matrix_mod

if TYPE_CHECKING:
    from collections.abc import Sequence


def parser(prog: str = "harness validate") -> usage.Parser:
    p = usage.Parser(prog=prog, description=COMMANDS["validate"])
    p.add_argument("matrix", nargs="?", type=Path, default=paths.DEFAULT_MATRIX)
    return p


def validate(path: Path) -> int:
    m = matrix_mod.load(path)
    print(f"{path}: ok, {len(m.stacks)} stacks, {len(m.models)} models")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return usage.run(lambda: validate(parser().parse_args(args).matrix), matrix_mod.MatrixError)
