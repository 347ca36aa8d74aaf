"""`nox -s bisect`: the first transformers release where one measurement flips.

    nox -s bisect -- --good tf==4.46.3 --bad tf==4.57.6 --model tiny-gpt2 \\
        --scenario st/fp32/lcmu=false/dm=cpu --metric status [--torch 2.13.0] [--run DIR]

The releases between the two ends come from the package index (harness.decide.releases). Each
probed release gets a fresh uv environment with the same torch (harness.measure.envs.install) and
runs the one cell through the bench machinery (harness.measure.runner.run_stack), so its records
land in <run>/raw/<stack-id>.jsonl like any bench run's; a re-run reuses records of this
machine instead of measuring again. The metric is `status`, `output` (the generated ids)
or a numeric record field, which flips when it moves past a threshold (relative to the
good end, in the direction of the bad end). A release that cannot be installed or cannot
be measured is skipped, as `git bisect skip` would.

Exit codes: 0 found, 1 no single answer (the ends agree, or skipped releases hide it),
2 bad input.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import paths, usage
from harness.config.matrix import Cell, Matrix, MatrixError, Scenario, Stack
from harness.config.matrix import load as load_matrix
from harness.decide import releases
from harness.golden import store as golden
from harness.measure import runner
from harness.measure.probe import NUMERIC, Measurement, Spec, host_fingerprint, measure

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

USAGE_EXIT = 2
UNDECIDED_EXIT = 1
DEFAULT_RUN = paths.REPORTS / "bisect"
DEFAULT_ENVS = paths.REPO / ".nox" / "bisect-envs"
DEFAULT_MATRIX = paths.DEFAULT_MATRIX
METRICS = ("status", "output", *NUMERIC)
_SCENARIO = re.compile(
    r"(?P<fmt>st|bin)/(?P<dtype>fp32|bf16|fp16)/lcmu=(?P<lcmu>omit|true|false)"
    r"/dm=(?P<dm>none|cpu|auto|cuda)"
)
_DTYPES = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
_END = re.compile(r"(?:(?:tf|transformers)==)?(?P<version>\d[^\s=<>!~,]*)")


class BisectError(Exception):
    """Bad input: one line, exit code 2."""


class Undecided(Exception):  # noqa: N818 - an outcome, not a failure of the program
    """No single answer: the ends agree, or the answer hides among skipped releases."""


# ---------------------------------------------------------------- measurements and verdicts


@dataclass(frozen=True)
class Criterion:
    """Judges a release against the good end: `good`, `bad`, or `skip` (not measurable)."""

    metric: str
    good: Measurement
    bad_status: str = ""  # status: the bad end's
    threshold: float = 0.0
    direction: float = 1.0  # numeric: the sign of (bad - good)

    def verdict(self, m: Measurement) -> str:
        if m.status == "install_error":
            return "skip"
        if self.metric == "status":
            return self._status(m.status)
        if m.status != "ok":
            return "skip"
        if self.metric == "output":
            return "good" if m.output == self.good.output else "bad"
        if m.value is None or self.good.value is None:
            return "skip"
        change = (m.value - self.good.value) / max(abs(self.good.value), 1e-12)
        return "bad" if change * self.direction > self.threshold else "good"

    def _status(self, status: str) -> str:
        if status == self.good.status:
            return "good"
        # A third status (an import error, a timeout) is neither end's behaviour.
        return "bad" if status == self.bad_status else "skip"


def criterion(metric: str, good: Measurement, bad: Measurement, threshold: float) -> Criterion:
    """The rule for this metric, after checking that the two ends really differ."""
    for end, m in (("good", good), ("bad", bad)):
        if m.status == "install_error":
            raise Undecided(f"the {end} end {m.version} did not install: {m.message[:300]}")
    if metric != "status":
        for end, m in (("good", good), ("bad", bad)):
            if m.status != "ok":
                raise Undecided(
                    f"the {end} end {m.version} has status {m.status}, so no {metric} to compare"
                )
    direction = 1.0
    if metric in NUMERIC and good.value is not None and bad.value is not None:
        direction = 1.0 if bad.value >= good.value else -1.0
    rule = Criterion(metric, good, bad.status, threshold, direction)
    if rule.verdict(bad) != "bad":
        shown = f"{good.show(metric)} vs {bad.show(metric)}"
        limit = f" within {threshold:.0%}" if metric in NUMERIC else ""
        raise Undecided(f"the ends agree on {metric}{limit} ({shown}): nothing to bisect")
    return rule


@dataclass(frozen=True)
class Search:
    """Indices into the version list: the answer, and every probe in order."""

    last_good: int
    first_bad: int
    untestable: tuple[int, ...]  # skipped releases between the two: the answer may be one
    probes: tuple[tuple[int, str], ...]


def search(count: int, verdict: Callable[[int], str]) -> Search:
    """Bisect indices 0..count-1, where 0 is good and count-1 is bad (checked before)."""
    lo, hi = 0, count - 1
    skipped: set[int] = set()
    probes: list[tuple[int, str]] = []
    while True:
        open_ = [i for i in range(lo + 1, hi) if i not in skipped]
        if not open_:
            break
        mid = (lo + hi) // 2
        # The middle, or the nearest release to it that is not known to be unmeasurable.
        i = min(open_, key=lambda k: (abs(k - mid), k))
        found = verdict(i)
        probes.append((i, found))
        if found == "good":
            lo = i
        elif found == "bad":
            hi = i
        else:
            skipped.add(i)
    untestable = tuple(sorted(i for i in skipped if lo < i < hi))
    return Search(lo, hi, untestable, tuple(probes))


# ---------------------------------------------------------------- command line


def _end(text: str) -> str:
    match = _END.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"expected tf==VERSION, got {text!r}")
    return match["version"]


def parser() -> usage.Parser:
    p = usage.Parser(prog="nox -s bisect --", description=__doc__.splitlines()[0])
    p.add_argument("--good", type=_end, required=True, help="tf==VERSION that behaves as before")
    p.add_argument("--bad", type=_end, required=True, help="tf==VERSION that behaves differently")
    p.add_argument("--model", required=True, help="a model id of matrix.yaml")
    p.add_argument("--scenario", required=True, help="e.g. st/fp32/lcmu=false/dm=cpu")
    p.add_argument("--metric", required=True, help=f"one of {', '.join(METRICS)}")
    p.add_argument("--threshold", type=float, default=None, help="numeric metrics: 0.05 = 5%%")
    p.add_argument("--torch", default="2.13.0")
    p.add_argument("--python", default="3.11")
    p.add_argument("--accelerate", default=None, help="exact version (default: the resolver's)")
    p.add_argument("--pin", action="append", default=[], help="extra requirement, repeatable")
    p.add_argument("--repeats", type=int, default=1)
    p.add_argument("--timeout", type=float, default=None, help="per run, seconds")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--run", type=Path, default=DEFAULT_RUN, help="run folder (the cache)")
    p.add_argument("--envdir", type=Path, default=DEFAULT_ENVS)
    p.add_argument("--keep-envs", action="store_true")
    p.add_argument("--refresh-versions", action="store_true", help="ask the index again")
    default_matrix = Path(os.environ.get("HARNESS_MATRIX", DEFAULT_MATRIX))
    p.add_argument("--matrix", type=Path, default=default_matrix)
    return p


def parse_scenario(text: str, max_new_tokens: int) -> Scenario:
    match = _SCENARIO.fullmatch(text)
    if match is None:
        raise BisectError(
            f"bad scenario id {text!r}: expected FORMAT/DTYPE/lcmu=omit|true|false/dm=..., "
            "e.g. st/fp32/lcmu=false/dm=cpu"
        )
    lcmu = {"omit": None, "true": True, "false": False}[match["lcmu"]]
    dm = None if match["dm"] == "none" else match["dm"]
    fmt = "safetensors" if match["fmt"] == "st" else "bin"
    return Scenario(lcmu, dm, _DTYPES[match["dtype"]], fmt, max_new_tokens)


def _threshold(ns: argparse.Namespace, matrix: Matrix) -> float:
    if ns.threshold is not None:
        if ns.threshold <= 0:
            raise BisectError(f"--threshold: expected a positive fraction, got {ns.threshold}")
        return float(ns.threshold)
    memory = ns.metric.endswith("_mb") or ns.metric == "peak_ratio"
    return matrix.compare.memory if memory else matrix.compare.time


def build(argv: Sequence[str]) -> tuple[Spec, argparse.Namespace, float]:
    ns = parser().parse_args(list(argv))
    if ns.metric not in METRICS:
        raise BisectError(f"unknown metric {ns.metric!r} (one of {', '.join(METRICS)})")
    if ns.repeats < 1:
        raise BisectError(f"--repeats: expected a positive integer, got {ns.repeats}")
    matrix = load_matrix(ns.matrix)
    model = matrix.model(ns.model)
    scenario = parse_scenario(ns.scenario, ns.max_new_tokens or matrix.settings.max_new_tokens)
    template = Stack(
        id="template", python=ns.python, transformers=ns.good, torch=ns.torch,
        accelerate=ns.accelerate, pins=tuple(ns.pin),
    )  # fmt: skip
    try:
        judge = golden.Judge.open(golden.GOLDENS, matrix.settings.golden_tolerance)
    except golden.GoldenError:
        judge = None  # goldens are not what a bisect is about; records just lack a verdict
    config = runner.RunConfig(
        run_id="bisect-" + dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d-%H%M%S"),
        run_dir=ns.run,
        mode=matrix.settings.mode,
        timeout_s=ns.timeout or matrix.settings.timeout_s,
        repeats=ns.repeats,
        cache_dir=runner.default_cache_dir(),
        judge=judge,
    )
    spec = Spec(Cell(template, model, scenario), ns.metric, config, ns.envdir, ns.keep_envs)
    return spec, ns, _threshold(ns, matrix)


def _say(line: str) -> None:
    print(line, flush=True)


def run(spec: Spec, ns: argparse.Namespace, threshold: float) -> dict[str, Any]:
    """The whole bisection; prints each probe and returns the summary it writes."""
    started = time.monotonic()
    cache = spec.config.run_dir / "versions" / "transformers.json"
    listed = releases.listing(
        "transformers", cache, must_hold=(ns.good, ns.bad), refresh=ns.refresh_versions
    )
    versions = releases.between(listed, ns.good, ns.bad)
    host = host_fingerprint()
    _say(
        f"bisect {spec.metric} of {spec.cell.id} on torch {ns.torch}, python {ns.python}: "
        f"{len(versions)} transformers releases from {ns.good} to {ns.bad} ({cache})"
    )
    seen: dict[str, Measurement] = {}

    def probe(version: str, label: str) -> Measurement:
        m = measure(spec, version, host)
        seen[version] = m
        how = "cached" if m.cached else f"{m.seconds:.0f} s"
        runs = f"{m.runs} run" + ("s" if m.runs != 1 else "")
        _say(f"  {label} transformers {version}: {m.show(spec.metric)} [{runs}, {how}]")
        return m

    good = probe(versions[0], "good end:")
    bad = probe(versions[-1], "bad end: ")
    rule = criterion(spec.metric, good, bad, threshold)
    window = [0, len(versions) - 1]  # mirrors search()'s bounds, for the progress lines
    count = 0

    def verdict(i: int) -> str:
        nonlocal count
        count += 1
        m = probe(versions[i], f"probe {count}:")
        found = rule.verdict(m)
        if found in ("good", "bad"):
            window[0 if found == "good" else 1] = i
        lo, hi = window
        _say(f"    -> {found}; the flip lies after {versions[lo]}, at or before {versions[hi]} "
             f"({hi - lo - 1} releases between)")  # fmt: skip
        return found

    found = search(len(versions), verdict)
    first_bad, last_good = versions[found.first_bad], versions[found.last_good]
    hidden = [versions[i] for i in found.untestable]
    summary = {
        "metric": spec.metric,
        "cell": spec.cell.id,
        "torch": ns.torch,
        "python": ns.python,
        "good": ns.good,
        "bad": ns.bad,
        "threshold": threshold if spec.metric in NUMERIC else None,
        "last_good": last_good,
        "first_bad": first_bad,
        "untestable": hidden,
        "probes": [
            {**asdict(seen[versions[i]]), "verdict": v, "output": None} for i, v in found.probes
        ],
        "good_end": seen[versions[0]].show(spec.metric),
        "bad_end": seen[versions[-1]].show(spec.metric),
        "seconds": round(time.monotonic() - started, 1),
        "measured": sum(1 for m in seen.values() if not m.cached),
    }
    path = spec.config.run_dir / "bisect.json"
    path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    before = seen[last_good].show(spec.metric, brief=True)
    after = seen[first_bad].show(spec.metric, brief=True)
    total = f"{len(seen)} releases looked at ({summary['measured']} measured) in "
    total += f"{summary['seconds']:.0f} s"
    if hidden:
        raise Undecided(
            f"the first bad release is one of {', '.join([*hidden, first_bad])} "
            f"(last good {last_good}: {before}); {', '.join(hidden)} could not be measured; "
            + total
        )
    _say(
        f"first bad: transformers {first_bad} ({after}); last good: {last_good} ({before}); "
        + total
    )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """0: found; 1: no single answer; 2: bad input."""
    try:
        spec, ns, threshold = build(sys.argv[1:] if argv is None else argv)
        spec.config.run_dir.mkdir(parents=True, exist_ok=True)
        run(spec, ns, threshold)
    except (BisectError, usage.UsageError, MatrixError, releases.ReleasesError) as exc:
        print(f"harness bisect: error: {exc}", file=sys.stderr)
        return USAGE_EXIT
    except Undecided as exc:
        print(f"no single answer: {exc}", flush=True)
        return UNDECIDED_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
