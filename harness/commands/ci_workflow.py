"""`harness ci-workflow` (and `nox -s ci-workflow`): .github/workflows/bench.yml from matrix.yaml,
one job per stack and shard, then merge, a pull request's compare comment and Pages."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.commands import add_matrix, command, entry, load_matrix, positive_int
from harness.config import matrix as matrix_mod
from harness.measure import shards

if TYPE_CHECKING:
    import argparse


def parser() -> argparse.ArgumentParser:
    p = command("ci-workflow")
    p.add_argument("--shards", type=positive_int, default=1)
    p.add_argument("--profile", default="default")
    p.add_argument("--out", type=Path, default=Path(".github/workflows/bench.yml"))
    p.add_argument("--cpu-runner", default=None, help="labels, comma-separated")
    p.add_argument("--gpu-runner", default=None, help="labels, comma-separated")
    p.add_argument("--branch", default="main", help="pushes to it measure and publish to Pages")
    add_matrix(p)
    return p


def ci_workflow(ns: argparse.Namespace) -> int:
    data = shards.workflow(
        load_matrix(ns.matrix), profile=ns.profile, shards=ns.shards,
        cpu_runner=ns.cpu_runner.split(",") if ns.cpu_runner else None,
        gpu_runner=ns.gpu_runner.split(",") if ns.gpu_runner else None, branch=ns.branch,
    )  # fmt: skip
    print(f"wrote {shards.write_workflow(ns.out, data)}")
    return 0


main = entry(parser, ci_workflow, matrix_mod.MatrixError)
