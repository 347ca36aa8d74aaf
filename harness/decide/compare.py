"""What `harness compare` compares: stack ids of one run, run folders, or one stack's .jsonl."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness import records as rec
from harness.decide.verdicts import CompareError, Comparison, Row, by, compare_records

if TYPE_CHECKING:
    from collections.abc import Mapping

    from harness.config.matrix import CompareSettings
    from harness.records import Record


@dataclass(frozen=True)
class Side:
    label: str
    stacks: Mapping[str, list[Record]]  # stack id -> its records


def resolve_side(text: str, run: Path) -> Side:
    """A run folder, one stack's .jsonl, or a stack id inside `run`."""
    path = Path(text)
    if path.is_dir():
        if not (path / "raw").is_dir():
            raise CompareError(f"{text}: not a run folder (no raw/ inside)")
        records = rec.read_run(path)
        if not records:
            raise CompareError(f"{text}: the run folder has no records")
        return Side(text, by(records, "stack_id"))
    if path.suffix == ".jsonl" and path.is_file():
        return Side(text, by(rec.read(path), "stack_id"))
    if "/" in text or path.suffix == ".jsonl":
        raise CompareError(f"{text}: no such run folder or record file")
    if not (run / "raw").is_dir():
        raise CompareError(f"{run}: no such run folder (give --run DIR)")
    jsonl = run / "raw" / f"{text}.jsonl"
    if not jsonl.is_file():
        known = sorted(p.stem for p in (run / "raw").glob("*.jsonl"))
        raise CompareError(f"unknown stack id {text!r} in {run} (known: {', '.join(known)})")
    return Side(text, by(rec.read(jsonl), "stack_id"))


def compare_sides(
    base: Side,
    cand: Side,
    settings: CompareSettings,
    *,
    tolerances: Mapping[str, float] | None = None,
    cross_machine: bool = False,
) -> Comparison:
    """One stack against one stack; two runs of several stacks pair up by stack id."""
    notes: list[str] = []
    if len(base.stacks) == 1 and len(cand.stacks) == 1:
        pairs = [("", next(iter(base.stacks.values())), next(iter(cand.stacks.values())))]
    else:
        shared = [s for s in base.stacks if s in cand.stacks]
        if not shared:
            raise CompareError(
                f"{base.label} and {cand.label} have no stack in common to pair up "
                f"({', '.join(base.stacks)} vs {', '.join(cand.stacks)}); name one stack per side"
            )
        pairs = [(s, base.stacks[s], cand.stacks[s]) for s in shared]
        unpaired = sorted(set(base.stacks) ^ set(cand.stacks))
        if unpaired:
            notes.append(f"stacks on one side only, not compared: {', '.join(unpaired)}")
    rows: list[Row] = []
    for group, rb, rc in pairs:
        rows += compare_records(
            rb, rc, settings, group=group, tolerances=tolerances,
            cross_machine=cross_machine, notes=notes,
        )  # fmt: skip
    return Comparison(base.label, cand.label, settings, tuple(rows), tuple(notes))
