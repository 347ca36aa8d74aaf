"""Bisection: the first transformers release where one measurement flips.

`measure(version)` is the caller's (harness.commands.bisect passes harness.measure.probe). The
metric is `status`, `output` (the generated ids) or a numeric field, which flips when it moves
past a threshold relative to the good end. An unmeasurable release is skipped, as `git bisect
skip` would. Exit codes: 0 found, 1 no single answer, 2 bad input.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.config import ids
from harness.config.matrix import DEVICE_MAPS, Scenario
from harness.decide import releases
from harness.metrics import NUMERIC

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    # harness.commands.bisect passes probe's; decide imports measure for the type alone.
    from harness.measure.probe import Measurement

METRICS = ("status", "output", *NUMERIC)
_END = re.compile(r"(?:(?:tf|transformers)==)?(?P<version>\d[^\s=<>!~,]*)")


class BisectError(Exception):
    """Bad input: one line, exit code 2."""


class Undecided(Exception):  # noqa: N818 - an outcome, not a failure of the program
    """No single answer: the ends agree, or the answer hides among skipped releases."""


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
            # A third status (an import error, a timeout) is neither end's behaviour.
            ends = {self.bad_status: "bad", self.good.status: "good"}  # good wins a tie
            return ends.get(m.status, "skip")
        if m.status != "ok":
            return "skip"
        if self.metric == "output":
            return "good" if m.output == self.good.output else "bad"
        if m.value is None or self.good.value is None:
            return "skip"
        change = (m.value - self.good.value) / max(abs(self.good.value), 1e-12)
        return "bad" if change * self.direction > self.threshold else "good"


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


def end_version(text: str) -> str | None:
    """`tf==4.46.3`, `transformers==4.46.3` or `4.46.3` -> 4.46.3; None for anything else."""
    match = _END.fullmatch(text.strip())
    return None if match is None else match["version"]


def parse_scenario(text: str, max_new_tokens: int) -> Scenario:
    try:
        axes = ids.parse_scenario_id(text)
    except ids.IdError as exc:
        raise BisectError(str(exc)) from None
    if axes.device_map not in (None, *DEVICE_MAPS):
        raise BisectError(f"bad scenario id {text!r}: dm= is none, {', '.join(DEVICE_MAPS)}")
    return Scenario(
        axes.low_cpu_mem_usage, axes.device_map, axes.dtype, axes.checkpoint_format, max_new_tokens
    )


@dataclass(frozen=True)
class Plan:
    """What one bisection looks for, and where it writes bisect.json."""

    metric: str
    cell_id: str
    good: str
    bad: str
    torch: str
    python: str
    threshold: float
    run_dir: Path
    refresh_versions: bool = False


_say = functools.partial(print, flush=True)


def run(plan: Plan, measure: Callable[[str], Measurement]) -> dict[str, Any]:
    """Bisect, measuring with `measure(version)`; prints each probe, returns bisect.json's data."""
    started = time.monotonic()
    cache = plan.run_dir / "versions" / "transformers.json"
    listed = releases.listing(
        "transformers", cache, must_hold=(plan.good, plan.bad), refresh=plan.refresh_versions
    )
    versions = releases.between(listed, plan.good, plan.bad)
    _say(
        f"bisect {plan.metric} of {plan.cell_id} on torch {plan.torch}, python {plan.python}: "
        f"{len(versions)} transformers releases from {plan.good} to {plan.bad} ({cache})"
    )
    seen: dict[str, Measurement] = {}

    def probe(version: str, label: str) -> Measurement:
        m = measure(version)
        seen[version] = m
        how = "cached" if m.cached else f"{m.seconds:.0f} s"
        runs = f"{m.runs} run" + ("s" if m.runs != 1 else "")
        _say(f"  {label} transformers {version}: {m.show(plan.metric)} [{runs}, {how}]")
        return m

    good = probe(versions[0], "good end:")
    bad = probe(versions[-1], "bad end: ")
    rule = criterion(plan.metric, good, bad, plan.threshold)
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
        "metric": plan.metric, "cell": plan.cell_id, "torch": plan.torch, "python": plan.python,
        "good": plan.good, "bad": plan.bad,
        "threshold": plan.threshold if plan.metric in NUMERIC else None,
        "last_good": last_good, "first_bad": first_bad, "untestable": hidden,
        # The generated ids stay out of bisect.json (output: null).
        "probes": [{**dataclasses.asdict(seen[versions[i]]), "output": None, "verdict": v}
                   for i, v in found.probes],
        "good_end": seen[versions[0]].show(plan.metric),
        "bad_end": seen[versions[-1]].show(plan.metric),
        "seconds": round(time.monotonic() - started, 1),
        "measured": sum(1 for m in seen.values() if not m.cached),
    }  # fmt: skip
    path = plan.run_dir / "bisect.json"
    path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    before = seen[last_good].show(plan.metric, brief=True)
    after = seen[first_bad].show(plan.metric, brief=True)
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
