"""The adjacent-version walk: order a run's stacks by version, say where each change appears.

`nox -s compare -- --walk` prints one sentence per change between neighbours (`sentence`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness import metrics
from harness.config import ids
from harness.decide import stats
from harness.decide.verdicts import Row, compare_records

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from packaging.version import Version

    from harness.config.matrix import CompareSettings
    from harness.records import Record


def stack_order_key(stack_id: str, records: Sequence[Record]) -> tuple[int, Version, Version, str]:
    """(transformers, torch) as installed, else as the stack id says; unknown sorts last."""
    tf = [r.get("transformers_version") for r in records]
    return ids.stack_order_key(stack_id, tf, [r.get("torch_version") for r in records])


@dataclass(frozen=True)
class Step:
    """One adjacent pair of the walk and what changes there."""

    base: str
    candidate: str
    rows: tuple[Row, ...]


def walk(
    stacks: Mapping[str, list[Record]],
    settings: CompareSettings,
    *,
    tolerances: Mapping[str, float] | None = None,
    notes: list[str] | None = None,
) -> list[Step]:
    ordered = sorted(stacks, key=lambda s: stack_order_key(s, stacks[s]))
    steps = []
    for a, b in itertools.pairwise(ordered):
        rows = compare_records(stacks[a], stacks[b], settings, tolerances=tolerances, notes=notes)
        steps.append(Step(a, b, tuple(rows)))
    return steps


def sentence(step: Step, row: Row) -> str:
    """'peak memory for CELL falls by 48% between A and B (better)'."""
    where = f"between {step.base} and {step.candidate}"
    if row.metric == "status":
        moves = f"changes from {row.base} to {row.candidate}"
        return f"status for {row.cell} {moves} {where} ({row.verdict})"
    if row.metric == "golden":
        return f"output for {row.cell} changes {where} ({row.verdict}: {row.reason})"
    label = metrics.METRICS[row.metric].label
    change = row.change or 0.0
    moves = "rises" if change > 0 else "falls"
    return f"{label} for {row.cell} {moves} by {abs(change):.0%} {where} ({row.verdict})"


def changes(steps: Sequence[Step]) -> list[tuple[Step, Row]]:
    """The better and worse rows of each step, in walk order: where each change appears."""
    return [(step, row) for step in steps for row in step.rows if row.verdict in stats.CHANGES]


def uncertain(steps: Sequence[Step]) -> int:
    return sum(1 for step in steps for row in step.rows if row.verdict == "uncertain")
