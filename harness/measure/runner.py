"""One stack's run as a pipeline: attempts -> record -> weights hash -> golden verdict -> disk.

Nothing one cell does can stop the others: every attempt becomes exactly one record.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness import paths
from harness import records as rec
from harness.golden import store as golden
from harness.measure.attempts import Attempted, RunConfig, attempts
from harness.measure.models import weight_files

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from pathlib import Path

    from harness.config.matrix import Cell, Stack

    Progress = Callable[[int, int, Cell, int, rec.Record | None], None]

__all__ = ["RunConfig", "default_cache_dir", "record_install_error", "run_stack", "run_stacks"]

default_cache_dir = paths.cache_dir


def pending(cells: Sequence[Cell], cfg: RunConfig, jsonl: Path) -> list[tuple[int, Cell]]:
    """(repeat, cell) pairs still to run, repeats round-robin so machine drift spreads over
    all cells. On --resume the pairs already on disk are done: an interrupted run wrote
    nothing for the cell it was in, so exactly the missing ones run again."""
    done: set[tuple[str, int]] = set()
    if cfg.resume and jsonl.exists():
        done = {(r["cell_id"], r["repeat"]) for r in rec.read(jsonl)}
    return [(r, c) for r in range(cfg.repeats) for c in cells if (c.id, r) not in done]


def record_install_error(
    cfg: RunConfig, stack: Stack, cells: Sequence[Cell], message: str
) -> list[rec.Record]:
    """Every run of a stack without an environment, as install_error records in its .jsonl."""
    records = rec.install_error_records(
        run_id=cfg.run_id, stack=stack, cells=cells, repeats=cfg.repeats, mode=cfg.mode,
        message=message,
    )  # fmt: skip
    for record in records:
        rec.append(cfg.run_dir / "raw" / f"{stack.id}.jsonl", record)
    return records


def recorded(
    cfg: RunConfig, stack: Stack, attempted: Iterable[Attempted]
) -> Iterator[tuple[Attempted, rec.Record]]:
    """Record, hash, judge and append each attempt, in the order they end."""
    raw = cfg.run_dir / "raw"
    hashes: dict[str, str | None] = {}  # the weights' sha256 on ok records, once per model
    for one in attempted:
        record = rec.build_record(
            run_id=cfg.run_id, cell=one.cell, repeat=one.repeat, mode=cfg.mode,
            outcome=one.outcome, env=one.stack_env,
        )  # fmt: skip
        model = one.cell.model
        if record["status"] == "ok":
            if model.id not in hashes:
                hashes[model.id] = golden.weights_sha256(weight_files(model, cfg.cache_dir))
            record["weights_sha256"] = hashes[model.id]
        if cfg.judge is not None:
            cfg.judge.stamp(record)
        rec.append(raw / f"{stack.id}.jsonl", record)
        if one.fit is not None:
            # Apart from raw/: one record per (cell, repeat) stays true there.
            rec.append(cfg.run_dir / "fit" / f"{stack.id}.jsonl", one.fit)
        yield one, record


def run_stacks(
    plans: Sequence[tuple[Stack, Sequence[Cell], Path]],
    cfg: RunConfig,
    progress: Progress | None = None,
) -> list[rec.Record]:
    """Run every (cell, repeat) of several stacks, interleaved: one run of each stack in turn,
    each stack in its own environment and worker, so that drift of the machine over time
    falls on every stack alike instead of reading as a version difference."""
    records: list[rec.Record] = []
    todos = []
    for stack, cells, _ in plans:
        mine = [c for c in cells if c.stack.id == stack.id]
        (cfg.run_dir / "raw").mkdir(parents=True, exist_ok=True)
        todos.append(pending(mine, cfg, cfg.run_dir / "raw" / f"{stack.id}.jsonl"))
    total = sum(map(len, todos))

    def starting(cell: Cell, repeat: int) -> None:
        if progress is not None:
            progress(len(records), total, cell, repeat, None)

    pipelines = [
        recorded(cfg, stack, attempts(stack, todo, python, cfg, starting=starting))
        for (stack, _, python), todo in zip(plans, todos, strict=True)
    ]
    while pipelines:  # round-robin; a finished stack drops out
        for pipeline in list(pipelines):
            one = next(pipeline, None)
            if one is None:
                pipelines.remove(pipeline)
                continue
            records.append(one[1])
            if progress is not None:
                progress(len(records), total, one[0].cell, one[0].repeat, one[1])
    return records


def run_stack(
    stack: Stack,
    cells: Sequence[Cell],
    python: Path,
    cfg: RunConfig,
    progress: Progress | None = None,
) -> list[rec.Record]:
    """Run every (cell, repeat) of one stack and append a record for each."""
    return run_stacks([(stack, cells, python)], cfg, progress)
