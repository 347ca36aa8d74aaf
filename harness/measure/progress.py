"""Progress of a bench session: a rich bar on a terminal, plain lines elsewhere (CI)."""

from __future__ import annotations

import contextlib
import sys
from typing import TYPE_CHECKING

from rich import progress as rp

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from harness.config.matrix import Cell
    from harness.records import Record

BAD_GOLDEN = ("mismatch", "stale")


def line(done: int, total: int, cell: Cell, repeat: int, record: Record) -> str:
    peak = record.get("peak_mb")
    extra = f" peak {peak:.0f} MiB" if isinstance(peak, float) else ""
    golden = f" golden {record['golden']}" if record.get("golden") else ""
    return (
        f"[{done:>4}/{total}] {cell.stack.id} {cell.id} #{repeat} "
        f"{record['status']} ({record['wall_s']:.1f} s){extra}{golden}"
    )


@contextlib.contextmanager
def reporter(
    title: str, *, force_plain: bool = False
) -> Iterator[Callable[[int, int, Cell, int, Record | None], None]]:
    """Yields the callback run_stack calls before (record None) and after each run."""
    if force_plain or not sys.stdout.isatty():

        def plain(done: int, total: int, cell: Cell, repeat: int, record: Record | None) -> None:
            if record is not None:
                print(line(done, total, cell, repeat, record), flush=True)

        yield plain
        return
    columns = (
        rp.TextColumn("[bold]{task.fields[title]}"), rp.BarColumn(), rp.MofNCompleteColumn(),
        rp.TimeElapsedColumn(), rp.TextColumn("eta"), rp.TimeRemainingColumn(),
        rp.TextColumn("{task.description}"),
    )  # fmt: skip
    with rp.Progress(*columns, transient=False) as bar:
        task = bar.add_task("", title=title, total=None)

        def rich(done: int, total: int, cell: Cell, repeat: int, record: Record | None) -> None:
            if record is None:
                bar.update(task, total=total, description=f"{cell.id} #{repeat}")
                return
            bar.update(task, total=total, completed=done)
            if record["status"] not in ("ok", "unsupported") or record.get("golden") in BAD_GOLDEN:
                text = line(done, total, cell, repeat, record)
                bar.console.print(text, markup=False, highlight=False, soft_wrap=True)

        yield rich
