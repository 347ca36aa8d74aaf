"""`harness cells [--profile P] [--models ...] [--stacks ...]`: the cells a bench would run."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness import usage
from harness.commands import bench, entry, load_matrix
from harness.config import matrix as matrix_mod

if TYPE_CHECKING:
    import argparse


def cells(ns: argparse.Namespace) -> int:
    try:
        selected = load_matrix(ns.matrix).cells(ns.profile, models=ns.models, stacks=ns.stacks)
    except matrix_mod.MatrixError as exc:
        raise usage.UsageError(str(exc)) from None
    for cell in selected:
        print(f"{cell.stack.id} {cell.id}")
    return 0


main = entry(lambda: bench.parser("cells"), cells)
