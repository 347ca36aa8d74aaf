"""`harness compare BASE CANDIDATE | --walk` (and `nox -s compare`): upgrade verdicts.

BASE and CANDIDATE: stack ids of `--run`, run folders, or one stack's .jsonl. The markdown is
appended to $GITHUB_STEP_SUMMARY when that is set. Exit 1 when a `worse` verdict falls under
the fail-on policy, 2 on bad input, else 0.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
from pathlib import Path

from harness import paths
from harness.commands import add_matrix, command, entry, positive_int
from harness.config.matrix import (
    DEFAULT_GOLDEN_TOLERANCE,
    FAIL_ON_CHOICES,
    CompareSettings,
    MatrixError,
)
from harness.config.matrix import load as load_matrix
from harness.config.models import MIN_REPEATS
from harness.decide import changepoints, render, walk
from harness.decide.compare import compare_sides, resolve_side
from harness.decide.verdicts import CompareError, Row


def _fraction(text: str) -> float:
    with contextlib.suppress(ValueError):
        if 0 < (value := float(text)) < 10:
            return value
    raise argparse.ArgumentTypeError(f"expected a fraction like 0.05, got {text!r}")


def _names(text: str) -> tuple[str, ...]:
    items = tuple(i.strip() for i in text.split(",") if i.strip())
    unknown = [i for i in items if i not in FAIL_ON_CHOICES]
    if unknown:
        allowed = ", ".join(FAIL_ON_CHOICES)
        raise argparse.ArgumentTypeError(f"unknown {unknown[0]!r} (allowed: {allowed})")
    if not items:
        raise argparse.ArgumentTypeError("expected one or more metrics or categories")
    return items


def _min_repeats(text: str) -> int:
    value = positive_int(text)
    if value < MIN_REPEATS:
        raise argparse.ArgumentTypeError(f"expected at least {MIN_REPEATS}, got {value}")
    return value


def _fail_on(text: str) -> tuple[str, ...]:
    return () if text.strip() == "none" else _names(text)


def _override(ns: argparse.Namespace, settings: CompareSettings) -> CompareSettings:
    given = {k: getattr(ns, k) for k in ("memory", "time", "alpha", "min_repeats", "fail_on")}
    return dataclasses.replace(settings, **{k: v for k, v in given.items() if v is not None})


def parser() -> argparse.ArgumentParser:
    p = command("compare")
    p.add_argument("base", nargs="?", help="stack id, run folder or .jsonl")
    p.add_argument("candidate", nargs="?", help="stack id, run folder or .jsonl")
    p.add_argument("--run", type=Path, default=paths.REPORTS / "latest", help="run of stack ids")
    p.add_argument("--walk", action="store_true", help="adjacent versions of the run's stacks")
    add_matrix(p, help="for compare: settings")
    p.add_argument("--memory-threshold", dest="memory", type=_fraction)
    p.add_argument("--time-threshold", dest="time", type=_fraction)
    p.add_argument("--alpha", type=_fraction, help="1 - confidence level")
    p.add_argument("--min-repeats", type=_min_repeats, help=f"at least {MIN_REPEATS}")
    p.add_argument("--fail-on", type=_fail_on, help="e.g. memory,status,golden; none never fails")
    p.add_argument("--markdown", type=Path, help="write the markdown here")
    p.add_argument("--json", type=Path, help="write the JSON here")
    p.add_argument("--all", dest="all_rows", action="store_true", help="print same rows too")
    p.add_argument("--cross-machine", action="store_true", help="compare across machines")
    p.add_argument("--metrics", type=_names, help="only these, e.g. memory,status")
    return p


def compare(ns: argparse.Namespace) -> int:
    """0: nothing the policy fails on; 1: a `worse` verdict it names."""
    if ns.walk and (ns.base or ns.candidate):
        raise CompareError("--walk takes no BASE/CANDIDATE: it walks every stack of --run")
    if not ns.walk and not (ns.base and ns.candidate):
        raise CompareError("expected BASE and CANDIDATE (stack ids, run folders), or --walk")
    if ns.alpha is not None and ns.alpha >= 1:
        raise CompareError(f"--alpha: expected a number between 0 and 1, got {ns.alpha}")
    # matrix.yaml's `compare:` (defaults without a matrix file), then the command line.
    settings, tolerances = CompareSettings(), DEFAULT_GOLDEN_TOLERANCE
    if ns.matrix.exists():
        matrix = load_matrix(ns.matrix)
        settings, tolerances = matrix.compare, matrix.settings.golden_tolerance
    settings = _override(ns, settings)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    out = render.Outputs(
        markdown=ns.markdown,
        json=ns.json,
        step_summary=Path(summary) if summary else None,
        all_rows=ns.all_rows,
    )

    def shown(row: Row | changepoints.ChangePoint) -> bool:
        return ns.metrics is None or row.metric in ns.metrics or row.category in ns.metrics

    if ns.walk:
        run = resolve_side(str(ns.run), ns.run)
        notes: list[str] = []
        steps = walk.walk(run.stacks, settings, tolerances=tolerances, notes=notes)
        steps = [dataclasses.replace(s, rows=tuple(filter(shown, s.rows))) for s in steps]
        everything = [r for records in run.stacks.values() for r in records]
        points = list(filter(shown, changepoints.detect_all(everything, settings)))
        render.emit_walk(out, str(ns.run), steps, notes, points)
        return 0
    base = resolve_side(ns.base, ns.run)
    cand = resolve_side(ns.candidate, ns.run)
    comparison = compare_sides(
        base, cand, settings, tolerances=tolerances, cross_machine=ns.cross_machine
    )
    # --metrics narrows what is compared, and so what can fail.
    comparison = dataclasses.replace(comparison, rows=tuple(filter(shown, comparison.rows)))
    render.emit(out, comparison)
    return 1 if comparison.failures() else 0


main = entry(parser, compare, CompareError, MatrixError)
