"""The run's console summary: a table of medians per (stack, cell), then the failures."""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter
from typing import TYPE_CHECKING, Any, cast

from rich.console import Console
from rich.table import Table

from harness import metrics
from harness import records as rec
from harness.golden import store as golden
from harness.report import tables

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    import pandas as pd

    from harness.records import Record


def _median(medians: pd.DataFrame, key: tuple[str, str], metric: str) -> float | None:
    value = medians.loc[key, metric] if key in medians.index else None
    return float(value) if isinstance(value, (int, float)) and not math.isnan(value) else None


def summary_rows(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (stack, cell): medians over the ok repeats (tables.spreads'), every status."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["stack_id"], r["cell_id"]), []).append(r)
    frame = tables.to_frame(cast("Sequence[Record]", records))
    medians = tables.spreads(frame, ["stack_id", "cell_id"], ("median",))["median"]
    rows = []
    for (stack, cell), group in groups.items():
        statuses = sorted({r["status"] for r in group}, key=metrics.STATUSES.index)
        texts: list[str] = next((r["output_text"] for r in group if r["status"] == "ok"), [])
        message = next((r["message"] for r in group if r["status"] != "ok"), "")
        row: dict[str, Any] = {"stack": stack, "cell": cell, "runs": len(group),
                               "status": "/".join(statuses)}  # fmt: skip
        row.update({m.name: _median(medians, (stack, cell), m.name) for m in metrics.SHOWN})
        row["text"] = (texts[0] if texts else message)[:40]
        rows.append(row)
    return rows


def print_summary(records: Sequence[Mapping[str, Any]], console: Console) -> None:
    table = Table(title="load + generate, medians over repeats (MiB relative to pre-load RSS)")
    columns = ("stack", "cell", "runs", "status", *(m.column for m in metrics.SHOWN),
               "first output or message")  # fmt: skip
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in summary_rows(records):
        table.add_row(
            row["stack"], row["cell"], str(row["runs"]), row["status"],
            *(tables.number(row[m.name], m.digits) for m in metrics.SHOWN),
            row["text"].replace("\n", " "),
        )  # fmt: skip
    console.print(table)
    counts = Counter(r["status"] for r in records)
    console.print("records: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))


def finish_run(
    run_dir: Path, console: Console | None = None, *, strict_golden: bool = False
) -> int:
    """Print the summary; exit code 1 on a status other than ok/unsupported or a failing golden."""
    records = rec.read_run(run_dir)
    console = console or Console(width=200)
    if not records:
        console.print(f"no records in {run_dir}")
        return 1
    print_summary(records, console)
    bad = rec.failed(records)
    for r in bad[:20]:
        console.print(
            "  {status}: {stack_id} {cell_id} #{repeat}: {message}".format_map(r), markup=False
        )
    verdicts = golden.counts(records)
    tally = ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items()))
    console.print("golden: " + (tally or "none"))
    failing = metrics.GOLDEN_FAILING | ({"drift"} if strict_golden else set())
    wrong = [r for r in records if r.get("golden") in failing]
    for r in wrong[:20]:  # with the first divergence: position, tokens, margins, context
        note = tables.golden_note(json.dumps(r.get("golden_detail") or []))
        console.print(f"  golden {r['golden']}: {r['stack_id']} {r['cell_id']} #{r['repeat']}: {note}", markup=False)  # fmt: skip  # noqa: E501
    if verdicts.get("drift") and not strict_golden:
        console.print(
            "  warning: golden drift (near-tie flips) does not fail the run; --strict-golden does"
        )
    if verdicts.get("missing"):
        console.print(
            f"  warning: {verdicts['missing']} records have no golden, so their output is not "
            "checked; record them with `nox -s golden -- --from STACK --write`"
        )
    bad = bad + wrong
    manifest = run_dir / "run.json"
    if manifest.exists():
        data = json.loads(manifest.read_text(encoding="utf-8"))
        data["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat()
        data["exit_code"] = 1 if bad else 0
        manifest.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    console.print(f"run folder: {run_dir}")
    return 1 if bad else 0
