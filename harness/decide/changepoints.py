"""Change points: where a metric steps along a release series (or a run history), and by how much.

ruptures' Pelt segments the per-release medians under a penalty set by the metric's threshold,
noise floor and within-release spread; each step is then confirmed by compare's own test
(harness.decide.verdicts.judged) on the segments either side, or dropped. A status or golden
verdict changing between consecutive releases is a step too.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import ruptures as rpt

from harness import metrics
from harness.config import ids
from harness.config.matrix import CompareSettings
from harness.decide import stats, verdicts, walk

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from harness.metrics import Category, Metric
    from harness.records import Record

# x (a stack id, a run id) and its values there (a release's repeats, a run's median).
Point = tuple[str, "Sequence[float]"]
Direction = Literal["better", "worse"]
# What labels a release in a sentence, where the series varies that package alone.
Axis = Literal["transformers", "torch", ""]


class ChangePointError(Exception):
    """Bad input (an unknown model, scenario or metric, no step): one line, exit code 2."""


@dataclass(frozen=True)
class Shift:
    """One confirmed step of a numeric series: the segments either side, judged as compare does."""

    index: int  # position in the series of the first point on the new level
    previous: str  # x of the last point on the old level
    first: str  # x of the first point on the new level
    estimate: stats.Estimate  # the segments' medians, relative change, its interval, p
    verdict: Direction
    reason: str


@dataclass(frozen=True)
class ChangePoint:
    """Where one (model, scenario, metric) steps, between two consecutive releases."""

    model: str
    scenario: str
    metric: str  # a registry metric, "status" or "golden"
    category: Category
    previous_release: str  # stack id (or x) of the last release on the old level
    first_release: str  # ... of the first release on the new level
    before: float | str  # the old level: the segment's median, or a status/golden verdict
    after: float | str
    direction: Direction
    reason: str = ""
    unit: str = ""  # of before, after and delta
    change: float | None = None  # relative: (after - before) / before
    delta: float | None = None  # absolute, in unit
    low: float | None = None  # the (1 - alpha) interval of change
    high: float | None = None
    p_value: float | None = None
    n_before: int = 0  # values behind each level
    n_after: int = 0
    machine: str = ""  # set where the records came from several machines
    axis: Axis = ""  # "transformers": the releases differ in transformers alone
    previous_versions: ids.StackVersions | None = None
    first_versions: ids.StackVersions | None = None

    @property
    def cell(self) -> str:
        return ids.cell_id(self.model, self.scenario)


def _judge(
    points: Sequence[Point], bkps: Sequence[int], metric: Metric, settings: CompareSettings,
    floor: float,
) -> list[tuple[stats.Estimate, stats.Judgement]]:  # fmt: skip
    """Each breakpoint judged on the values of the segments either side of it."""
    edges = [0, *bkps, len(points)]
    out = []
    for a, b, c in zip(edges, edges[1:], edges[2:], strict=False):
        before = [v for _, vs in points[a:b] for v in vs]
        after = [v for _, vs in points[b:c] for v in vs]
        out.append(verdicts.judged(before, after, metric, settings, floor))
    return out


def _direction(verdict: stats.Verdict) -> Direction:
    return "better" if verdict == "better" else "worse"


def detect(
    points: Iterable[Point],
    metric: str,
    *,
    settings: CompareSettings | None = None,
    floor: float = 0.0,
) -> list[Shift]:
    """The confirmed steps of one numeric series, in order; points without values are left out."""
    settings = settings or CompareSettings()
    found = metrics.METRICS[metric]
    series = [(x, list(vs)) for x, vs in points if len(vs)]
    if len(series) < 2:
        return []
    medians = np.array([statistics.median(vs) for _, vs in series])
    scale = max(float(np.median(np.abs(medians))), floor, 1e-12)
    spread = float(np.median([max(vs) - min(vs) for _, vs in series]))
    # In units of the series' level: a step must beat the threshold, the floor and the spread.
    noise = max(verdicts.threshold(found, settings), floor / scale, spread / scale)
    signal = (medians / scale).reshape(-1, 1)
    algo = rpt.Pelt(model="l2", min_size=1, jump=1).fit(signal)
    bkps = [int(b) for b in algo.predict(pen=noise**2)[:-1]]
    while bkps:
        judged = _judge(series, bkps, found, settings, floor)
        weak = [i for i, (_, j) in enumerate(judged) if j.verdict not in stats.CHANGES]
        if not weak:
            return [
                Shift(b, series[b - 1][0], series[b][0], est, _direction(j.verdict), j.reason)
                for b, (est, j) in zip(bkps, judged, strict=True)
            ]
        # Drop the smallest unconfirmed step: its neighbours are judged on the merged segment.
        del bkps[min(weak, key=lambda i: abs(judged[i][0].change))]
    return []


def stack_versions(stack: str, records: Sequence[Record]) -> ids.StackVersions | None:
    """The versions a stack id names, else those its records read inside the stack."""
    parsed = ids.parse_stack_id(stack)
    if parsed is not None:
        return parsed
    for r in records:
        tf, torch, py = (
            r.get("transformers_version"),
            r.get("torch_version"),
            r.get("python_version"),
        )
        if tf and torch and py:
            return ids.StackVersions(tf, torch.split("+")[0], ".".join(py.split(".")[:2]))
    return None


def _axis(versions: Iterable[ids.StackVersions | None]) -> Axis:
    found = list(versions)
    if not found or any(v is None for v in found):
        return ""
    known = [v for v in found if v is not None]
    if len({(v.torch, v.python) for v in known}) == 1:
        return "transformers"
    if len({(v.transformers, v.python) for v in known}) == 1:
        return "torch"
    return ""


@dataclass(frozen=True)
class _Series:
    """One cell's records per stack, in release order, and what labels those releases."""

    model: str
    scenario: str
    stacks: tuple[tuple[str, list[Record]], ...]
    versions: Mapping[str, ids.StackVersions | None]
    axis: Axis

    def point(self, prev: str, first: str, **fields: Any) -> ChangePoint:  # noqa: ANN401
        return ChangePoint(
            model=self.model, scenario=self.scenario, previous_release=prev, first_release=first,
            axis=self.axis, previous_versions=self.versions[prev],
            first_versions=self.versions[first], **fields,
        )  # fmt: skip


def _categorical(series: _Series) -> list[ChangePoint]:
    """Status steps (by compare's rank: every failure ranks alike) and golden steps."""
    out = []
    status = [verdicts.worst_status(rs) for _, rs in series.stacks]
    for i in range(1, len(status)):
        rb, rc = (verdicts.status_rank(s) for s in status[i - 1 : i + 1])
        if rb != rc:
            prev, first = series.stacks[i - 1][0], series.stacks[i][0]
            b, c = status[i - 1], status[i]
            out.append(series.point(prev, first, metric="status", category="status", before=b,
                                    after=c, direction="worse" if rc > rb else "better",
                                    reason=f"{b} -> {c}"))  # fmt: skip
    golden = [verdicts.worst_golden(verdicts.ok_records(rs)) for _, rs in series.stacks]
    judged = [(i, g) for i, g in enumerate(golden) if g is not None and g != "missing"]
    # A release without a verdict (it failed, no golden) is passed over: the old level's last
    # release is then further back.
    for (h, gb), (i, gc) in itertools.pairwise(judged):
        bad_b, bad_c = gb in metrics.GOLDEN_FAILING, gc in metrics.GOLDEN_FAILING
        if bad_b != bad_c:
            prev, first = series.stacks[h][0], series.stacks[i][0]
            out.append(series.point(prev, first, metric="golden", category="golden", before=gb,
                                    after=gc, direction="worse" if bad_c else "better",
                                    reason=f"golden {gb} -> {gc}"))  # fmt: skip
    return out


def _numeric(series: _Series, settings: CompareSettings, machine: str = "") -> list[ChangePoint]:
    weights = verdicts.weights_mb(r for _, rs in series.stacks for r in rs)
    out = []
    for m in metrics.COMPARED:
        if m.file_backed and weights is not None and weights < settings.min_weights_mb:
            continue  # compare judges such a model by its anonymous memory alone
        points = [(s, verdicts.values(rs, m)) for s, rs in series.stacks]
        floor = verdicts.noise_floor(m, settings, weights)
        for shift in detect(points, m.name, settings=settings, floor=floor):
            est = shift.estimate
            out.append(series.point(
                shift.previous, shift.first, metric=m.name, category=m.category, before=est.base,
                after=est.candidate, direction=shift.verdict, reason=shift.reason, unit=m.unit,
                change=est.change, delta=est.candidate - est.base, low=est.low, high=est.high,
                p_value=est.p_value, n_before=est.n_base, n_after=est.n_candidate,
                machine=machine,
            ))  # fmt: skip
    return out


def _machines(
    stacks: Sequence[tuple[str, list[Record]]],
) -> list[tuple[str, list[tuple[str, list[Record]]]]]:
    """Numbers are never pooled across machines: one numeric series per machine."""
    fps = sorted(verdicts.fingerprints(r for _, rs in stacks for r in rs))
    if len(fps) <= 1:
        return [("", list(stacks))]
    return [(fp, [(s, [r for r in rs if r.get("machine_fingerprint") == fp]) for s, rs in stacks])
            for fp in fps]  # fmt: skip


def detect_all(
    records: Iterable[Record], settings: CompareSettings | None = None
) -> list[ChangePoint]:
    """Every change point of a run (or any records of several stacks): per cell, in release
    order (walk's order), status and golden steps first, then the numeric metrics."""
    settings = settings or CompareSettings()
    stacks = verdicts.by(records, "stack_id")
    order = sorted(stacks, key=lambda s: walk.stack_order_key(s, stacks[s]))
    versions = {s: stack_versions(s, stacks[s]) for s in order}
    axis = _axis(versions.values())
    cells: dict[tuple[str, str], dict[str, list[Record]]] = {}
    for s in order:
        for r in stacks[s]:
            cells.setdefault((str(r["model"]), str(r["scenario"])), {}).setdefault(s, []).append(r)
    out: list[ChangePoint] = []
    for (model, scenario), per in cells.items():
        series = _Series(model, scenario, tuple((s, per[s]) for s in order if s in per),
                         versions, axis)  # fmt: skip
        out += _categorical(series)
        for machine, part in _machines(series.stacks):
            out += _numeric(
                _Series(model, scenario, tuple(part), versions, axis), settings, machine
            )
    return out


def _label(cp: ChangePoint, versions: ids.StackVersions | None, stack: str) -> str:
    if versions is None or not cp.axis:
        return stack
    return versions.transformers if cp.axis == "transformers" else versions.torch


def where(cp: ChangePoint) -> str:
    """'transformers 4.51.0 (after 4.50.3)', or the stack ids where both packages change."""
    first = _label(cp, cp.first_versions, cp.first_release)
    prev = _label(cp, cp.previous_versions, cp.previous_release)
    return f"{cp.axis} {first} (after {prev})" if cp.axis else f"{first} (after {prev})"


def sentence(cp: ChangePoint) -> str:
    """'peak_mb of CELL steps down 48% [44%, 52%] (1450.0 -> 754.0 MiB, better) at ...'."""
    on = f" on machine {cp.machine}" if cp.machine else ""
    if cp.change is None or not isinstance(cp.before, float) or not isinstance(cp.after, float):
        return (f"{cp.metric} of {cp.cell}{on} steps from {cp.before} to {cp.after} "
                f"({cp.direction}) at {where(cp)}")  # fmt: skip
    m = metrics.METRICS[cp.metric]
    way = "up" if cp.change > 0 else "down"
    size = f"{abs(cp.change):.0%}"
    if cp.low is not None and cp.high is not None:
        lo, hi = sorted((abs(cp.low), abs(cp.high)))
        size += f" [{lo:.0%}, {hi:.0%}]"
    levels = f"{cp.before:.{m.digits}f} {m.unit} -> {cp.after:.{m.digits}f} {m.unit}"
    return (
        f"{cp.metric} of {cp.cell}{on} steps {way} {size} ({levels}, {cp.direction}) at {where(cp)}"
    )


def find(
    records: Sequence[Record], model: str, scenario: str, metric: str,
    settings: CompareSettings | None = None,
) -> list[ChangePoint]:  # fmt: skip
    """The steps of one (model, scenario, metric) in these records; bad names raise one line."""
    known = ("status", "golden", *metrics.NUMERIC)
    if metric not in known:
        raise ChangePointError(f"unknown metric {metric!r} (one of {', '.join(known)})")
    models = sorted({str(r["model"]) for r in records})
    if model not in models:
        raise ChangePointError(f"no records of model {model!r} (models: {', '.join(models)})")
    scenarios = sorted({str(r["scenario"]) for r in records if r["model"] == model})
    if scenario not in scenarios:
        raise ChangePointError(
            f"no records of {model} in scenario {scenario!r} (scenarios: {', '.join(scenarios)})"
        )
    cell = [r for r in records if r["model"] == model and r["scenario"] == scenario]
    found = [cp for cp in detect_all(cell, settings) if cp.metric == metric]
    if not found:
        raise ChangePointError(
            f"no {metric} step of {ids.cell_id(model, scenario)} in these records"
        )
    return found
