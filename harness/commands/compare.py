"""`harness compare BASE CANDIDATE` (and `nox -s compare`): upgrade verdicts, exit codes.

BASE and CANDIDATE are stack ids of one run (`--run DIR`, default reports/latest), run
folders, or one stack's .jsonl. It prints a table, writes markdown (`--markdown FILE`, and
appends it to $GITHUB_STEP_SUMMARY when that is set) and JSON (`--json FILE`), and exits 1
when a `worse` verdict falls under the fail-on policy, 2 on bad input, else 0.
`--walk` orders the stacks of one run by version and says where each change appears.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness import paths, usage
from harness.commands import COMMANDS
from harness.config.matrix import (
    DEFAULT_GOLDEN_TOLERANCE,
    FAIL_ON_CHOICES,
    CompareSettings,
    MatrixError,
)
from harness.config.matrix import load as load_matrix
from harness.decide import render, walk
from harness.decide.compare import compare_sides, resolve_side
from harness.decide.verdicts import CompareError, Row

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

USAGE_EXIT = usage.USAGE_EXIT
DEFAULT_RUN = paths.REPORTS / "latest"
DEFAULT_MATRIX = paths.DEFAULT_MATRIX


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.05, got {text!r}") from None
    if not 0 < value < 10:
        raise argparse.ArgumentTypeError(f"expected a fraction like 0.05, got {text!r}")
    return value


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _names(text: str) -> tuple[str, ...]:
    """Comma-separated metrics or categories (memory, time, status, golden)."""
    items = tuple(i.strip() for i in text.split(",") if i.strip())
    unknown = [i for i in items if i not in FAIL_ON_CHOICES]
    if unknown:
        allowed = ", ".join(FAIL_ON_CHOICES)
        raise argparse.ArgumentTypeError(f"unknown {unknown[0]!r} (allowed: {allowed})")
    if not items:
        raise argparse.ArgumentTypeError("expected one or more metrics or categories")
    return items


def _fail_on(text: str) -> tuple[str, ...]:
    """Like --metrics; `none` never fails."""
    return () if text.strip() == "none" else _names(text)


@dataclass(frozen=True)
class Args:
    base: str | None
    candidate: str | None
    run: Path
    walk: bool
    matrix: Path
    memory: float | None
    time: float | None
    alpha: float | None
    min_repeats: int | None
    fail_on: tuple[str, ...] | None
    markdown: Path | None
    json: Path | None
    all_rows: bool
    cross_machine: bool
    metrics: tuple[str, ...] | None

    def shown(self, row: Row) -> bool:
        return self.metrics is None or row.metric in self.metrics or row.category in self.metrics

    def override(self, settings: CompareSettings) -> CompareSettings:
        return CompareSettings(
            memory=settings.memory if self.memory is None else self.memory,
            time=settings.time if self.time is None else self.time,
            alpha=settings.alpha if self.alpha is None else self.alpha,
            min_repeats=settings.min_repeats if self.min_repeats is None else self.min_repeats,
            memory_floor_mb=settings.memory_floor_mb,
            fail_on=settings.fail_on if self.fail_on is None else self.fail_on,
        )


def parser(prog: str = "harness compare") -> usage.Parser:
    p = usage.Parser(prog=prog, description=COMMANDS["compare"])
    p.add_argument("base", nargs="?", help="stack id, run folder or .jsonl")
    p.add_argument("candidate", nargs="?", help="stack id, run folder or .jsonl")
    p.add_argument("--run", type=Path, default=DEFAULT_RUN, help="run folder for stack ids")
    p.add_argument("--walk", action="store_true", help="adjacent versions of the run's stacks")
    default_matrix = Path(os.environ.get("HARNESS_MATRIX", DEFAULT_MATRIX))
    p.add_argument("--matrix", type=Path, default=default_matrix, help="for compare: settings")
    p.add_argument("--memory-threshold", dest="memory", type=_fraction, default=None)
    p.add_argument("--time-threshold", dest="time", type=_fraction, default=None)
    p.add_argument("--alpha", type=_fraction, default=None, help="1 - confidence level")
    p.add_argument("--min-repeats", type=_count, default=None)
    p.add_argument("--fail-on", type=_fail_on, default=None, help="e.g. memory,status,golden")
    p.add_argument("--markdown", type=Path, default=None, help="write the markdown here")
    p.add_argument("--json", type=Path, default=None, help="write the JSON here")
    p.add_argument("--all", dest="all_rows", action="store_true", help="print same rows too")
    p.add_argument("--cross-machine", action="store_true", help="compare across machines")
    p.add_argument("--metrics", type=_names, default=None, help="only these, e.g. memory,status")
    return p


def parse_args(argv: Sequence[str]) -> Args:
    ns = parser().parse_args(list(argv))
    if ns.walk and (ns.base or ns.candidate):
        raise CompareError("--walk takes no BASE/CANDIDATE: it walks every stack of --run")
    if not ns.walk and not (ns.base and ns.candidate):
        raise CompareError("expected BASE and CANDIDATE (stack ids, run folders), or --walk")
    if ns.alpha is not None and ns.alpha >= 1:
        raise CompareError(f"--alpha: expected a number between 0 and 1, got {ns.alpha}")
    return Args(**vars(ns))


def _settings(args: Args) -> tuple[CompareSettings, Mapping[str, float]]:
    """matrix.yaml's `compare:` (defaults without a matrix file), then the command line."""
    if not args.matrix.exists():
        return args.override(CompareSettings()), DEFAULT_GOLDEN_TOLERANCE
    matrix = load_matrix(args.matrix)
    return args.override(matrix.compare), matrix.settings.golden_tolerance


def main(argv: Sequence[str] | None = None) -> int:
    """0: nothing the policy fails on; 1: a `worse` verdict it names; 2: bad input."""
    args = list(sys.argv[1:] if argv is None else argv)
    return usage.run(lambda: compare(parse_args(args)), CompareError, MatrixError)


def compare(args: Args) -> int:
    settings, tolerances = _settings(args)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    out = render.Outputs(
        markdown=args.markdown,
        json=args.json,
        step_summary=Path(summary) if summary else None,
        all_rows=args.all_rows,
    )
    if args.walk:
        run = resolve_side(str(args.run), args.run)
        notes: list[str] = []
        steps = walk.walk(run.stacks, settings, tolerances=tolerances, notes=notes)
        steps = [
            dataclasses.replace(s, rows=tuple(r for r in s.rows if args.shown(r))) for s in steps
        ]
        render.emit_walk(out, str(args.run), steps, notes)
        return 0
    assert args.base is not None  # noqa: S101 - parse_args checked it
    assert args.candidate is not None  # noqa: S101
    base = resolve_side(args.base, args.run)
    cand = resolve_side(args.candidate, args.run)
    comparison = compare_sides(
        base, cand, settings, tolerances=tolerances, cross_machine=args.cross_machine
    )
    # --metrics narrows what is compared, and so what can fail.
    rows = tuple(r for r in comparison.rows if args.shown(r))
    comparison = dataclasses.replace(comparison, rows=rows)
    render.emit(out, comparison)
    return 1 if comparison.failures() else 0
