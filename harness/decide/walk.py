"""The adjacent-version walk: order a run's stacks by version, say where each change appears.

`nox -s compare -- --walk` prints one sentence per change between neighbours, such as
"peak memory for gpt2-355m/st/fp32/lcmu=omit/dm=none falls by 48% between
tf4.46.3-torch2.5.1-py3.11 and tf4.57.6-torch2.8.0-py3.11 (better)".
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from harness.decide.verdicts import METRICS, Record, Row, compare_records

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from harness.config.matrix import CompareSettings

_STACK_ID = re.compile(r"tf(?P<tf>[^-]+)-torch(?P<torch>[^-]+)")


def _version(text: object) -> Version | None:
    if not isinstance(text, str):
        return None
    try:
        return Version(text.split("+")[0])
    except InvalidVersion:
        return None


def stack_order_key(stack_id: str, records: Sequence[Record]) -> tuple[Version, Version, str]:
    """(transformers, torch) as installed, else as the stack id says; unknown sorts first."""
    tf = next((v for r in records if (v := _version(r.get("transformers_version")))), None)
    torch = next((v for r in records if (v := _version(r.get("torch_version")))), None)
    match = _STACK_ID.match(stack_id)
    if match:
        tf = tf or _version(match["tf"])
        torch = torch or _version(match["torch"])
    zero = Version("0")
    return (tf or zero, torch or zero, stack_id)


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
    label = next(m.label for m in METRICS if m.name == row.metric)
    change = row.change or 0.0
    moves = "rises" if change > 0 else "falls"
    return f"{label} for {row.cell} {moves} by {abs(change):.0%} {where} ({row.verdict})"


def changes(steps: Sequence[Step]) -> list[tuple[Step, Row]]:
    """The better and worse rows of each step, in walk order: where each change appears."""
    return [
        (step, row) for step in steps for row in step.rows if row.verdict in ("better", "worse")
    ]


def uncertain(steps: Sequence[Step]) -> int:
    return sum(1 for step in steps for row in step.rows if row.verdict == "uncertain")
