"""Verdicts between two sets of records, cell by cell and metric by metric.

A status leaving `ok`, or a golden going to `mismatch`/`stale`, is always `worse`. Without a
golden the base's tokens and margins judge the candidate's (`drift` is a near-tie flip).
Machines are never pooled: a comparison with no machine in common needs cross_machine.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from harness import metrics
from harness import records as rec
from harness.decide import stats
from harness.golden import store as golden
from harness.metrics import COMPARED

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from harness.config.matrix import CompareSettings
    from harness.metrics import Metric
    from harness.records import Record

# A row's verdict: a stats verdict, or n/a where one side has nothing to judge.
RowVerdict = stats.Verdict | Literal["n/a"]
VERDICTS: tuple[RowVerdict, ...] = (*stats.VERDICTS, "n/a")
# Rank of a status: a higher rank on the candidate is worse. Every failing status ranks the
# same: error -> timeout is not judged a change.
_FAILED_RANK = len(metrics.GOOD_STATUSES)


class CompareError(Exception):
    """Bad input: an unknown stack, a missing folder, records of unrelated machines."""


@dataclass(frozen=True)
class Row:
    """One metric of one cell: both sides, the change, and the verdict with its reason."""

    group: str  # "" or what separates rows of one comparison: a stack id, a machine
    cell: str
    metric: str
    category: str  # memory, time, status or golden: what fail_on may name
    better: str  # which way is better: lower, higher, ok, match
    verdict: RowVerdict
    reason: str
    base: float | str | None = None
    candidate: float | str | None = None
    n_base: int = 0
    n_candidate: int = 0
    change: float | None = None  # relative change of the medians
    low: float | None = None  # its confidence interval
    high: float | None = None
    p_value: float | None = None  # Mann-Whitney U, two-sided


@dataclass(frozen=True)
class Comparison:
    base: str
    candidate: str
    settings: CompareSettings
    rows: tuple[Row, ...]
    notes: tuple[str, ...]

    def failures(self) -> list[Row]:
        """`worse` rows that the fail-on policy names, by category or by metric."""
        policy = set(self.settings.fail_on)
        worse = [r for r in self.rows if r.verdict == "worse"]
        return [r for r in worse if r.metric in policy or r.category in policy]


def status_rank(status: str) -> int:
    return metrics.STATUS_RANK[status] if status in metrics.GOOD_STATUSES else _FAILED_RANK


def worst_status(records: Sequence[Record]) -> str:
    return max((str(r["status"]) for r in records), key=lambda s: (status_rank(s), s))


@dataclass(frozen=True)
class Pair:
    """One cell's records on both sides."""

    group: str
    cell: str
    base: Sequence[Record]
    cand: Sequence[Record]

    def row(self, metric: str, category: str, better: str, **fields: Any) -> Row:  # noqa: ANN401
        return Row(group=self.group, cell=self.cell, metric=metric, category=category,
                   better=better, **fields)  # fmt: skip


def _status_row(pair: Pair) -> Row:
    b, c = worst_status(pair.base), worst_status(pair.cand)
    rb, rc = status_rank(b), status_rank(c)
    verdict: RowVerdict = "worse" if rc > rb else "better" if rc < rb else "same"
    reason = f"{b} -> {c}" if b != c else f"{b} on both"
    if verdict == "worse" and b == "ok":
        reason += ": a status leaving ok is always worse"
    return pair.row("status", "status", "ok", verdict=verdict, reason=reason, base=b,
                    candidate=c, n_base=len(pair.base), n_candidate=len(pair.cand))  # fmt: skip


def ok_records(records: Sequence[Record]) -> list[Record]:
    return [r for r in records if r.get("status") == "ok"]


def worst_golden(records: Sequence[Record]) -> str | None:
    verdicts = [str(r["golden"]) for r in records if r.get("golden")]
    return max(verdicts, key=metrics.GOLDEN_RANK.__getitem__) if verdicts else None


def _output_verdict(base: Record, cand: Record, tolerance: float) -> tuple[RowVerdict, str]:
    """The candidate's outputs against the base's: the tokenizer first, then each step, both
    sides' margins and the base's runner-up deciding near-ties."""
    if list(base.get("prompts") or []) != list(cand.get("prompts") or []):
        return "n/a", "the two sides ran different prompts"
    inputs_b, inputs_c = base.get("input_ids") or [], cand.get("input_ids") or []
    for i, (in_b, in_c) in enumerate(zip(inputs_b, inputs_c, strict=False)):
        changed = golden.tokenizer_detail(in_c, in_b or None)
        if changed is not None:
            return "worse", f"prompt {i + 1}: {golden.describe(changed)}"
    reason = "identical token ids"
    for i in range(min(len(base["output_ids"]), len(cand["output_ids"]))):
        found = golden.compare(golden.side(cand, i), golden.side(base, i), tolerance)
        if found["verdict"] == "mismatch":
            return "worse", f"prompt {i + 1} differs from the base: {golden.describe(found)}"
        if found["verdict"] == "drift":
            reason = f"prompt {i + 1}: {golden.describe(found)} (tolerance {tolerance:g})"
    return "same", reason


def _golden_row(pair: Pair, tolerance: float) -> Row:
    ok_b, ok_c = ok_records(pair.base), ok_records(pair.cand)

    def row(b: str | None, c: str | None, verdict: RowVerdict, reason: str) -> Row:
        return pair.row("golden", "golden", "match", verdict=verdict, reason=reason, base=b,
                        candidate=c, n_base=len(ok_b), n_candidate=len(ok_c))  # fmt: skip

    if not ok_b or not ok_c:
        side = "base" if not ok_b else "candidate"
        return row(None, None, "n/a", f"no ok records on the {side}: no output to judge")
    gb, gc = worst_golden(ok_b), worst_golden(ok_c)
    if gb and gc and "missing" not in (gb, gc):
        bad_b, bad_c = gb in metrics.GOLDEN_FAILING, gc in metrics.GOLDEN_FAILING
        if bad_c and not bad_b:
            return row(gb, gc, "worse", f"golden {gb} -> {gc}: always worse")
        if bad_b and not bad_c:
            return row(gb, gc, "better", f"golden {gb} -> {gc}")
        if not (bad_b and bad_c):
            return row(gb, gc, "same", f"golden {gb} -> {gc}" if gb != gc else f"golden {gb}")
        # Both fail their golden: the same failure, or has the output moved again?
        verdict, reason = _output_verdict(ok_b[0], ok_c[0], tolerance)
        return row(gb, gc, verdict, f"golden {gb} -> {gc}; against the base's output: {reason}")
    # No golden for this case: the candidate must say what the base says.
    verdict, reason = _output_verdict(ok_b[0], ok_c[0], tolerance)
    label = {"worse": "mismatch", "same": "same ids"}.get(verdict)
    return row("reference", label, verdict, f"no golden; against the base's output: {reason}")


def values(records: Sequence[Record], metric: Metric) -> list[float]:
    found = [(r.get("mode"), r.get(metric.name)) for r in ok_records(records)]
    if metric.per_worker:  # a fork-server's one import is not n repeats of it
        found = [(m, v) for m, v in found if m != "forkserver"] + sorted(
            {("forkserver", v) for m, v in found if m == "forkserver"}, key=str
        )
    return rec.numbers(v for _, v in found)


def weights_mb(records: Iterable[Record]) -> float | None:
    sizes = rec.numbers(r.get("param_bytes") for r in records)
    return max(sizes) / metrics.MIB if sizes else None


def noise_floor(metric: Metric, settings: CompareSettings, weights: float | None) -> float:
    """The smallest absolute move judged at all: compare's floor for memory, none for time."""
    if metric.category != "memory":
        return 0.0
    floor_mb = max(settings.memory_floor_mb, (weights or 0.0) * settings.memory_floor_share)
    if metric.unit == "MiB":
        return floor_mb
    # peak_ratio is in weights: the same floor, in those units.
    return floor_mb / weights if weights else 0.0


def threshold(metric: Metric, settings: CompareSettings) -> float:
    return settings.memory if metric.category == "memory" else settings.time


def judged(
    base: Sequence[float], cand: Sequence[float], metric: Metric, settings: CompareSettings,
    floor: float,
) -> tuple[stats.Estimate, stats.Judgement]:  # fmt: skip
    """One metric's estimate and verdict, as compare (and each change point) judges it."""
    est = stats.estimate(base, cand, alpha=settings.alpha, floor=floor)
    found = stats.judge(
        est,
        threshold=threshold(metric, settings),
        higher_is_better=metric.higher_is_better,
        alpha=settings.alpha,
        min_repeats=settings.min_repeats,
        floor=floor,
    )
    return est, found


def _metric_row(pair: Pair, metric: Metric, settings: CompareSettings) -> Row:
    vb, vc = values(pair.base, metric), values(pair.cand, metric)
    head = (metric.name, metric.category, metric.better)
    if not vb or not vc:
        side = "base" if not vb else "candidate"
        return pair.row(*head, verdict="n/a", reason=f"no ok measurement on the {side}",
                        n_base=len(vb), n_candidate=len(vc))  # fmt: skip
    weights = weights_mb((*pair.base, *pair.cand))
    if metric.file_backed and weights is not None and weights < settings.min_weights_mb:
        reason = (f"weights {weights:.3g} MiB < min_weights_mb {settings.min_weights_mb:g}: its "
                  "file pages are mostly torch's own code; judged by anonymous memory")  # fmt: skip
        return pair.row(*head, verdict="n/a", reason=reason, base=statistics.median(vb),
                        candidate=statistics.median(vc), n_base=len(vb), n_candidate=len(vc))  # fmt: skip  # noqa: E501
    est, found = judged(vb, vc, metric, settings, noise_floor(metric, settings, weights))
    return pair.row(*head, verdict=found.verdict, reason=found.reason, base=est.base,
                    candidate=est.candidate, n_base=len(vb), n_candidate=len(vc),
                    change=est.change, low=est.low, high=est.high, p_value=est.p_value)  # fmt: skip


def by(records: Iterable[Record], field: str) -> dict[str, list[Record]]:
    """Records grouped by one field's value as text, in first-seen order."""
    out: dict[str, list[Record]] = {}
    for r in records:
        out.setdefault(str(r[field]), []).append(r)  # type: ignore[literal-required]
    return out


def fingerprints(records: Iterable[Record]) -> set[str]:
    return {str(r["machine_fingerprint"]) for r in records if r.get("machine_fingerprint")}


def _machine_groups(
    base: Sequence[Record], cand: Sequence[Record], *, cross_machine: bool, notes: list[str]
) -> list[tuple[str, list[Record], list[Record]]]:
    """Records split by machine; a record without one (an install error) joins every group."""
    fb, fc = fingerprints(base), fingerprints(cand)
    common = sorted(fb & fc)
    if fb and fc and not common:
        if not cross_machine:
            raise CompareError(
                f"the base was measured on machine {', '.join(sorted(fb))} and the candidate "
                f"on {', '.join(sorted(fc))}: memory and times are not comparable across "
                "machines; pass --cross-machine to compare anyway"
            )
        notes.append(
            f"cross-machine: base from {', '.join(sorted(fb))}, candidate from "
            f"{', '.join(sorted(fc))}; numbers compared anyway (--cross-machine)"
        )
    if not common:  # cross-machine, or one side recorded no machine at all
        return [("", list(base), list(cand))]
    for side, found, records in (("base", fb, base), ("candidate", fc, cand)):
        for fp in sorted(found - set(common)):
            n = sum(1 for r in records if r.get("machine_fingerprint") == fp)
            notes.append(f"{n} {side} records from machine {fp} left out: no counterpart there")
    several = len(common) > 1
    if several:
        notes.append(f"records from {len(common)} machines: compared machine by machine")

    def on(records: Sequence[Record], fp: str) -> list[Record]:
        return [r for r in records if r.get("machine_fingerprint") in (fp, None)]

    return [(f"machine {fp}" if several else "", on(base, fp), on(cand, fp)) for fp in common]


# Besides the scenario, what two records must share to measure the same thing.
_SETTINGS = ("max_new_tokens", "mode", "memory_method")


def _cells(mine: Sequence[Record], other: Sequence[Record]) -> dict[str, list[Record]]:
    """Records by cell; a cell run under other settings on either side is split by them."""
    variants: dict[str, set[tuple[object, ...]]] = {}
    for r in (*mine, *other):
        variants.setdefault(r["cell_id"], set()).add(tuple(r.get(k) for k in _SETTINGS))
    out: dict[str, list[Record]] = {}
    for r in mine:
        key = r["cell_id"]
        if len(variants[key]) > 1:
            key += " (" + ", ".join(f"{k}={r.get(k)}" for k in _SETTINGS) + ")"
        out.setdefault(key, []).append(r)
    return out


def _provenance(base: Sequence[Record], cand: Sequence[Record], notes: list[str]) -> None:
    """A note when the sides were measured by other harness or worker code."""
    for field, what in (("worker_sha256", "worker"), ("harness_version", "harness")):
        sides = [sorted({str(r.get(field) or "unrecorded") for r in s}) for s in (base, cand)]
        if sides[0] != sides[1] or len(sides[0]) > 1:
            notes.append(
                f"mixed provenance: base measured by {what} {', '.join(sides[0])}, candidate by "
                f"{', '.join(sides[1])}; a difference may come from the harness, not the stack"
            )


def compare_records(
    base: Sequence[Record],
    cand: Sequence[Record],
    settings: CompareSettings,
    *,
    group: str = "",
    tolerances: Mapping[str, float] | None = None,
    cross_machine: bool = False,
    notes: list[str] | None = None,
) -> list[Row]:
    """Rows for every cell both sides ran: status, golden, then the numeric metrics."""
    notes = [] if notes is None else notes
    tolerances = tolerances or {}
    rows: list[Row] = []
    _provenance(base, cand, notes)
    for machine, rb, rc in _machine_groups(base, cand, cross_machine=cross_machine, notes=notes):
        label = " ".join(part for part in (group, machine) if part)
        cells_b, cells_c = _cells(rb, rc), _cells(rc, rb)
        for side, mine, other in (("base", cells_b, cells_c), ("candidate", cells_c, cells_b)):
            only = [c for c in mine if c not in other]
            if only:
                where = f" ({label})" if label else ""
                notes.append(f"only on the {side}{where}, not compared: {', '.join(only)}")
        for cell, b in cells_b.items():
            if cell not in cells_c:
                continue
            pair = Pair(label, cell, b, cells_c[cell])
            tolerance = float(tolerances.get(str(b[0].get("dtype")), 0.0))
            rows.append(_status_row(pair))
            rows.append(_golden_row(pair, tolerance))
            # A metric neither side measured (CUDA on a CPU run, a field older records lack)
            # has nothing to judge: no row, rather than one n/a per cell.
            both = (*b, *cells_c[cell])
            measured = [m for m in COMPARED if rec.numbers(r.get(m.name) for r in both)]
            rows.extend(_metric_row(pair, m, settings) for m in measured)
    return rows
