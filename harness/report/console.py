"""The run's console summary: a table of medians per (stack, cell), then the failures."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from harness import records as rec
from harness.golden import store as golden

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def summary_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (stack, cell): medians over repeats, and the worst status seen."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        groups.setdefault((r["stack_id"], r["cell_id"]), []).append(r)
    rows = []
    for (stack, cell), group in groups.items():
        statuses = sorted({r["status"] for r in group}, key=rec.STATUSES.index)
        ok = [r for r in group if r["status"] == "ok"]
        texts = ok[0]["output_text"] if ok else []
        message = next((r["message"] for r in group if r["status"] != "ok"), "")
        rows.append(
            {
                "stack": stack,
                "cell": cell,
                "runs": len(group),
                "status": "/".join(statuses),
                "load_s": rec.median_or_none(r["load_s"] for r in ok),
                "ttft_s": rec.median_or_none(r["ttft_s"] for r in ok),
                "tokens_per_s": rec.median_or_none(r["tokens_per_s"] for r in ok),
                "peak_mb": rec.median_or_none(r["peak_mb"] for r in ok),
                "anon_mb": rec.median_or_none(r["anon_mb"] for r in ok),
                "file_mb": rec.median_or_none(r["file_mb"] for r in ok),
                "peak_ratio": rec.median_or_none(r["peak_ratio"] for r in ok),
                "text": (texts[0] if texts else message)[:40],
            }
        )
    return rows


def print_summary(records: Sequence[dict[str, Any]], console: Console | None = None) -> None:
    console = console or Console(width=200)
    table = Table(title="load + generate, medians over repeats (MiB relative to pre-load RSS)")
    columns = ("stack", "cell", "runs", "status", "load s", "ttft s", "tok/s", "peak MiB",
               "anon MiB", "file MiB", "peak/params", "first output or message")  # fmt: skip
    for col in columns:
        table.add_column(col, overflow="fold")
    for row in summary_rows(records):
        table.add_row(
            row["stack"], row["cell"], str(row["runs"]), row["status"],
            _fmt(row["load_s"], 3), _fmt(row["ttft_s"], 3), _fmt(row["tokens_per_s"]),
            _fmt(row["peak_mb"]), _fmt(row["anon_mb"]), _fmt(row["file_mb"]),
            _fmt(row["peak_ratio"], 2), row["text"].replace("\n", " "),
        )  # fmt: skip
    console.print(table)
    counts: dict[str, int] = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
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
        line = f"  {r['status']}: {r['stack_id']} {r['cell_id']} #{r['repeat']}: {r['message']}"
        console.print(line, markup=False)
    verdicts = golden.counts(records)
    failing = golden.FAILING | ({"drift"} if strict_golden else set())
    console.print(
        "golden: " + (", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())) or "none")
    )
    wrong = [r for r in records if r.get("golden") in failing]
    for r in wrong[:20]:
        line = f"  golden {r['golden']}: {r['stack_id']} {r['cell_id']} #{r['repeat']}"
        console.print(line, markup=False)
    if verdicts.get("drift") and not strict_golden:
        console.print(
            "  warning: golden drift (near-tie flips) does not fail the run; --strict-golden does"
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
