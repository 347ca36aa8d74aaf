"""`harness validate [MATRIX]`: load matrix.yaml with every check; one line per outcome."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.commands import add_matrix, command, entry
from harness.config import matrix as matrix_mod

if TYPE_CHECKING:
    import argparse


def parser() -> argparse.ArgumentParser:
    p = command("validate")
    add_matrix(p, "default: $HARNESS_MATRIX, else matrix.yaml", "matrix", nargs="?")
    return p


def validate(ns: argparse.Namespace) -> int:
    m = matrix_mod.load(ns.matrix)
    print(f"{ns.matrix}: ok, {len(m.stacks)} stacks, {len(m.models)} models")
    return 0


main = entry(parser, validate, matrix_mod.MatrixError)
