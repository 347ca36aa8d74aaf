"""`harness bisect` (and `nox -s bisect`): the first transformers release where a metric flips.

--from-step takes the ends (and torch, python) from the step the run's change points find in that
series. Exit codes: 0 found, 1 no single answer (the ends agree, or skipped releases hide it), 2
bad input.
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path
from typing import TYPE_CHECKING

from harness import metrics, paths
from harness import records as rec
from harness.commands import add_matrix, command, entry, positive_int
from harness.config.matrix import Cell, Matrix, MatrixError, Stack
from harness.config.matrix import load as load_matrix
from harness.decide import bisect, changepoints, releases, verdicts
from harness.golden import store as golden
from harness.measure import probe, runner

if TYPE_CHECKING:
    from collections.abc import Callable

UNDECIDED_EXIT = 1


def _end(text: str) -> str:
    version = bisect.end_version(text)
    if version is None:
        raise argparse.ArgumentTypeError(f"expected tf==VERSION, got {text!r}")
    return version


def parser() -> argparse.ArgumentParser:
    p = command("bisect")
    p.add_argument("--good", type=_end, help="tf==VERSION that behaves as before")
    p.add_argument("--bad", type=_end, help="tf==VERSION that behaves differently")
    p.add_argument("--from-step", type=Path, help="run folder: the ends of its step in this series")
    p.add_argument("--model", required=True, help="a model id of matrix.yaml")
    p.add_argument("--scenario", required=True, help="e.g. st/fp32/lcmu=false/dm=cpu")
    p.add_argument("--metric", required=True, help=f"one of {', '.join(bisect.METRICS)}")
    p.add_argument("--threshold", type=float, default=None, help="numeric metrics: 0.05 = 5%%")
    p.add_argument("--torch", default="2.13.0")
    p.add_argument("--python", default="3.11")
    p.add_argument("--accelerate", default=None, help="exact version (default: the resolver's)")
    p.add_argument("--pin", action="append", default=[], help="extra requirement, repeatable")
    p.add_argument("--repeats", type=positive_int, default=1)
    p.add_argument("--timeout", type=float, default=None, help="per run, seconds")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument(
        "--run", type=Path, default=paths.REPORTS / "bisect", help="run folder (the cache)"
    )
    p.add_argument("--envdir", type=Path, default=paths.REPO / ".nox" / "bisect-envs")
    p.add_argument("--keep-envs", action="store_true")
    p.add_argument("--refresh-versions", action="store_true", help="ask the index again")
    add_matrix(p)
    return p


def _threshold(ns: argparse.Namespace, matrix: Matrix) -> float:
    if ns.threshold is not None:
        if ns.threshold <= 0:
            raise bisect.BisectError(
                f"--threshold: expected a positive fraction, got {ns.threshold}"
            )
        return float(ns.threshold)
    metric = metrics.METRICS.get(ns.metric)
    return verdicts.threshold(metric, matrix.compare) if metric else matrix.compare.time


def from_step(ns: argparse.Namespace, matrix: Matrix) -> changepoints.ChangePoint:
    """Sets ns.good, ns.bad, ns.torch and ns.python from the run's first step in the series."""
    if ns.good or ns.bad:
        raise bisect.BisectError("--from-step takes no --good/--bad: the step gives both ends")
    run: Path = ns.from_step
    if not (run / "raw").is_dir():
        raise bisect.BisectError(f"{run}: not a run folder (no raw/ inside)")
    # A golden step is bisected on the generated ids.
    metric = "golden" if ns.metric == "output" else ns.metric
    found = changepoints.find(rec.read_run(run), ns.model, ns.scenario, metric, matrix.compare)
    step = found[0]
    prev, first = step.previous_versions, step.first_versions
    if prev is None or first is None:
        raise bisect.BisectError(f"{changepoints.where(step)}: a stack of unknown versions")
    if (prev.torch, prev.python) != (first.torch, first.python):
        raise bisect.BisectError(
            f"the step at {changepoints.where(step)} changes torch or python as well: bisect "
            "walks transformers releases on one torch"
        )
    ns.good, ns.bad = prev.transformers, first.transformers
    ns.torch, ns.python = first.torch, first.python
    ns.metric = "output" if metric == "golden" else metric
    more = f" (the first of {len(found)})" if len(found) > 1 else ""
    print(f"from the step{more}: {changepoints.sentence(step)}", flush=True)
    return step


def build(ns: argparse.Namespace) -> tuple[probe.Spec, bisect.Plan]:
    matrix = load_matrix(ns.matrix)
    if ns.from_step is not None:
        from_step(ns, matrix)
    elif not (ns.good and ns.bad):
        raise bisect.BisectError("expected --good and --bad (tf==VERSION), or --from-step RUN_DIR")
    if ns.metric not in bisect.METRICS:
        known = ", ".join(bisect.METRICS)
        raise bisect.BisectError(f"unknown metric {ns.metric!r} (one of {known})")
    model = matrix.model(ns.model)
    scenario = bisect.parse_scenario(
        ns.scenario, ns.max_new_tokens or matrix.settings.max_new_tokens
    )
    template = Stack(id="template", python=ns.python, transformers=ns.good, torch=ns.torch,
                     accelerate=ns.accelerate, pins=tuple(ns.pin))  # fmt: skip
    try:
        judge = golden.Judge.open(golden.GOLDENS, matrix.settings.golden_tolerance)
    except golden.GoldenError:
        judge = None  # goldens are not what a bisect is about; records just lack a verdict
    config = runner.RunConfig(
        run_id="bisect-" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S"),
        run_dir=ns.run, mode=matrix.settings.mode,
        timeout_s=ns.timeout or matrix.settings.timeout_s, repeats=ns.repeats,
        cache_dir=runner.default_cache_dir(), judge=judge,
    )  # fmt: skip
    cell = Cell(template, model, scenario)
    spec = probe.Spec(cell, ns.metric, config, ns.envdir, ns.keep_envs)
    plan = bisect.Plan(
        metric=ns.metric, cell_id=cell.id, good=ns.good, bad=ns.bad, torch=ns.torch,
        python=ns.python, threshold=_threshold(ns, matrix), run_dir=ns.run,
        refresh_versions=ns.refresh_versions,
    )  # fmt: skip
    return spec, plan


def measurer(spec: probe.Spec) -> Callable[[str], probe.Measurement]:
    """The real measurement of a release, reusing this machine's records in the run folder."""
    host = probe.host_fingerprint()
    return lambda version: probe.measure(spec, version, host)


def run_bisect(ns: argparse.Namespace) -> int:
    """0: found; 1: no single answer."""
    spec, plan = build(ns)
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    try:
        bisect.run(plan, measurer(spec))
    except bisect.Undecided as exc:
        print(f"no single answer: {exc}", flush=True)
        return UNDECIDED_EXIT
    return 0


main = entry(
    parser, run_bisect, bisect.BisectError, MatrixError, releases.ReleasesError,
    changepoints.ChangePointError,
)  # fmt: skip
