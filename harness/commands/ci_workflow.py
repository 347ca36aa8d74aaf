"""`harness ci-workflow [--shards N] [--profile P]` (and `nox -s ci-workflow`).

Writes .github/workflows/bench.yml from matrix.yaml: one job per stack and shard.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness import paths, usage
from harness.commands import COMMANDS
from harness.commands.bench import _positive_int
from harness.config import matrix as matrix_mod
from harness.measure import shards

if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence


def parser(prog: str = "harness ci-workflow") -> usage.Parser:
    p = usage.Parser(prog=prog, description=COMMANDS["ci-workflow"])
    p.add_argument("--shards", type=_positive_int, default=1)
    p.add_argument("--profile", default="default")
    p.add_argument("--out", type=Path, default=Path(".github/workflows/bench.yml"))
    p.add_argument("--cpu-runner", default=None, help="labels, comma-separated")
    p.add_argument("--gpu-runner", default=None, help="labels, comma-separated")
    default_matrix = Path(os.environ.get("HARNESS_MATRIX", paths.DEFAULT_MATRIX))
    p.add_argument("--matrix", type=Path, default=default_matrix)
    return p


def ci_workflow(ns: argparse.Namespace) -> int:
    data = shards.workflow(
        matrix_mod.load(ns.matrix), profile=ns.profile, shards=ns.shards,
        cpu_runner=ns.cpu_runner.split(",") if ns.cpu_runner else None,
        gpu_runner=ns.gpu_runner.split(",") if ns.gpu_runner else None,
    )  # fmt: skip
    print(f"wrote {shards.write_workflow(ns.out, data)}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return usage.run(lambda: ci_workflow(parser().parse_args(args)), matrix_mod.MatrixError)
