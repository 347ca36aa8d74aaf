"""`harness validate [MATRIX]`: load matrix.yaml with every check; one line per outcome."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from harness import paths
from harness.commands import command, entry
from harness.config import matrix as matrix_mod

if TYPE_CHECKING:
    import argparse


def parser() -> argparse.ArgumentParser:
    p = command("validate")
    default = Path(os.environ.get("HARNESS_MATRIX", paths.DEFAULT_MATRIX))
    p.add_argument(
        "matrix",
        nargs="?",
        type=Path,
        default=default,
        help="default: $HARNESS_MATRIX, else matrix.yaml",
    )
    return p


def validate(ns: argparse.Namespace) -> int:
    m = matrix_mod.load(ns.matrix)
    print(f"{ns.matrix}: ok, {len(m.stacks)} stacks, {len(m.models)} models")
    return 0


main = entry(parser, validate, matrix_mod.MatrixError)
