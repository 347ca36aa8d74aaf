"""What the compatibility page shows: a state (status joined with golden verdict) per stack and
scenario, the worst per stack, the grid of releases per model, and the releases that work."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from harness import metrics
from harness.config import ids
from harness.report import badge
from harness.report.tables import golden_note

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

    from harness.records import Record

GOLDEN_MISMATCH = "golden mismatch"
# Best to worst, from the status ranking: the statuses that do not fail a run, then an ok
# run whose golden verdict fails one, then the failing statuses. A block shows the worst.
STATES: tuple[str, ...] = (
    *(s for s in metrics.STATUSES if s in metrics.GOOD_STATUSES),
    GOLDEN_MISMATCH,
    *(s for s in metrics.STATUSES if s not in metrics.GOOD_STATUSES),
)
STATE_RANK: Mapping[str, int] = {s: i for i, s in enumerate(STATES)}
UNKNOWN = "?"  # a version neither the records nor the stack id name
BADGE_LABEL = "transformers"


def state_of(record: Mapping[str, object]) -> str:
    status = str(record.get("status"))
    if status != "ok":
        return status if status in STATE_RANK else "error"
    return GOLDEN_MISMATCH if record.get("golden") in metrics.GOLDEN_FAILING else "ok"


def reason_of(record: Mapping[str, object]) -> str:
    """Why a record is not ok: its message, or its golden verdict's first divergence."""
    state = state_of(record)
    if state == "ok":
        return ""
    if state == GOLDEN_MISMATCH:
        note = golden_note(json.dumps(record.get("golden_detail") or [], default=str))
        return f"golden {record.get('golden')}" + (f": {note}" if note else "")
    return str(record.get("message") or record.get("reason") or state)


def _worst(records: Sequence[Mapping[str, object]]) -> Mapping[str, object]:
    return max(records, key=lambda r: STATE_RANK[state_of(r)])  # the first of equals


@dataclass(frozen=True)
class ScenarioRow:
    """One scenario of a stack, over its repeats."""

    scenario: str
    state: str
    statuses: str  # e.g. "2 ok" or "1 ok, 1 error", best first
    golden: str | None  # the worst verdict of its records; None: not judged
    reason: str


@dataclass(frozen=True)
class StackCell:
    """One stack of one model: the block the grid shows."""

    model: str
    stack: str
    transformers: str  # releases: as installed (local labels aside), else as the id says
    torch: str
    python: str
    installed: str  # the versions as the records read them, "?" for none (install errors)
    state: str
    reason: str  # the worst record's
    scenarios: tuple[ScenarioRow, ...]

    @property
    def ok(self) -> int:
        return sum(s.state == "ok" for s in self.scenarios)

    @property
    def total(self) -> int:
        return len(self.scenarios)


def _scenario(scenario: str, records: Sequence[Mapping[str, object]]) -> ScenarioRow:
    worst = _worst(records)
    counts = Counter(str(r.get("status")) for r in records)
    ranked = sorted(counts, key=lambda s: (metrics.STATUS_RANK.get(s, len(STATES)), s))
    goldens = [str(g) for r in records if isinstance(g := r.get("golden"), str)]
    golden = max(goldens, key=lambda g: metrics.GOLDEN_RANK.get(g, -1), default=None)
    statuses = ", ".join(f"{counts[s]} {s}" for s in ranked)
    return ScenarioRow(scenario, state_of(worst), statuses, golden, reason_of(worst))


def _installed(records: Iterable[Mapping[str, object]], field: str) -> str | None:
    return next((v for r in records if isinstance(v := r.get(field), str) and v), None)


def release(text: str) -> str:
    """The release a version belongs to: 2.13.0+cpu is torch 2.13.0 (one column)."""
    try:
        return Version(text).public
    except InvalidVersion:
        return text


def _stack_cell(model: str, stack: str, records: Sequence[Mapping[str, object]]) -> StackCell:
    by_scenario: dict[str, list[Mapping[str, object]]] = {}
    for r in records:
        by_scenario.setdefault(str(r.get("scenario")), []).append(r)
    named = ids.parse_stack_id(stack)  # install errors read no versions: the id names them
    worst = _worst(records)
    tf, torch = _installed(records, "transformers_version"), _installed(records, "torch_version")
    return StackCell(
        model=model,
        stack=stack,
        transformers=release(tf or (named.transformers if named else UNKNOWN)),
        torch=release(torch or (named.torch if named else UNKNOWN)),
        python=_installed(records, "python_version") or (named.python if named else UNKNOWN),
        installed=f"transformers {tf or UNKNOWN}, torch {torch or UNKNOWN}",
        state=state_of(worst),
        reason=reason_of(worst),
        scenarios=tuple(_scenario(s, rs) for s, rs in by_scenario.items()),
    )


def stack_cells(records: Iterable[Record]) -> list[StackCell]:
    """One block per (model, stack): models in run order, stacks by version."""
    groups: dict[tuple[str, str], list[Mapping[str, object]]] = {}
    for r in records:
        groups.setdefault((str(r.get("model")), str(r.get("stack_id"))), []).append(r)
    models = list(dict.fromkeys(model for model, _ in groups))

    def key(item: tuple[tuple[str, str], list[Mapping[str, object]]]) -> tuple[object, ...]:
        (model, stack), rs = item
        tf = [r.get("transformers_version") for r in rs]
        torch = [r.get("torch_version") for r in rs]
        return (models.index(model), ids.stack_order_key(stack, tf, torch))

    return [_stack_cell(m, s, rs) for (m, s), rs in sorted(groups.items(), key=key)]


@dataclass(frozen=True)
class Grid:
    """One model's table: transformers releases (rows) by torch releases (columns)."""

    model: str
    transformers: tuple[str, ...]
    torch: tuple[str, ...]
    blocks: Mapping[tuple[str, str], tuple[StackCell, ...]]


def grids(cells: Sequence[StackCell]) -> list[Grid]:
    out = []
    for model in dict.fromkeys(c.model for c in cells):
        mine = [c for c in cells if c.model == model]
        blocks: dict[tuple[str, str], list[StackCell]] = {}
        for c in mine:  # already in stack order
            blocks.setdefault((c.transformers, c.torch), []).append(c)
        rows = sorted({c.transformers for c in mine}, key=ids.version_key)
        cols = sorted({c.torch for c in mine}, key=ids.version_key)
        out.append(Grid(model, tuple(rows), tuple(cols),
                        {k: tuple(v) for k, v in blocks.items()}))  # fmt: skip
    return out


@dataclass(frozen=True)
class Works:
    """The transformers releases whose every stack, of every model, is ok."""

    releases: tuple[str, ...]  # every known release in the records, oldest first
    working: tuple[str, ...]

    @property
    def text(self) -> str:
        if not self.working:
            return "none"
        low, high = self.working[0], self.working[-1]
        return low if low == high else f"{low}\N{EN DASH}{high}"

    @property
    def gaps(self) -> tuple[str, ...]:
        """Releases between the lowest and highest working one that do not work."""
        if not self.working:
            return ()
        inside = self.releases[self.releases.index(self.working[0]) :]
        inside = inside[: inside.index(self.working[-1]) + 1]
        return tuple(r for r in inside if r not in self.working)


def works(cells: Sequence[StackCell]) -> Works:
    releases = sorted({c.transformers for c in cells} - {UNKNOWN}, key=ids.version_key)
    working = [r for r in releases if all(c.state == "ok" for c in cells if c.transformers == r)]
    return Works(tuple(releases), tuple(working))


def transformers_badge(cells: Sequence[StackCell]) -> str:
    """badge.svg's text: green for a range with no failing release inside, else yellow."""
    found = works(cells)
    colour = badge.GREY if not found.working else badge.YELLOW if found.gaps else badge.GREEN
    return badge.badge_svg(BADGE_LABEL, found.text, colour)
