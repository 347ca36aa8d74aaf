"""`harness history MODEL SCENARIO METRIC [--by run|release]`: one cell's series from the results
store; `--add RUN_DIR ...` merges run folders into it, `--html DIR` writes history.html."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness import metrics, paths, usage
from harness.commands import command, entry
from harness.report import history as page
from harness.report import store

if TYPE_CHECKING:
    import argparse

    import pandas as pd


def parser() -> argparse.ArgumentParser:
    p = command("history")
    p.add_argument("model", nargs="?", metavar="MODEL")
    p.add_argument("scenario", nargs="?", metavar="SCENARIO", help="e.g. st/fp32/lcmu=omit/dm=none")
    p.add_argument("metric", nargs="?", metavar="METRIC", help="e.g. peak_mb, load_s")
    p.add_argument("--by", choices=("run", "release"), default="run",
                   help="x: when each run started (a line per stack), or the transformers "
                   "release (a line per torch version); default run")  # fmt: skip
    p.add_argument("--store", type=Path, default=None,
                   help="default: $HARNESS_STORE, else reports/store")  # fmt: skip
    p.add_argument("--add", nargs="+", type=Path, default=[], metavar="RUN_DIR",
                   help="merge run folders, or folders holding them (the workflow's shard "
                   "artifacts), into the store first; merging one again replaces it")  # fmt: skip
    p.add_argument("--html", type=Path, default=None, metavar="DIR",
                   help="write DIR/history.html (and plotly.min.js) from the store")  # fmt: skip
    return p


def _table(df: pd.DataFrame, title: str, by: str, digits: int) -> None:
    # Text, not markup: a model id like "[red]x" shows as typed.
    table = Table(title=Text(title))
    heads = ("stack", "run started") if by == "run" else ("torch", "transformers")
    for head, right in ((heads[0], False), (heads[1], False), ("n", True), ("runs", True),
                        ("median", True), ("spread (q1 to q3)", True)):  # fmt: skip
        table.add_column(head, justify="right" if right else "left", overflow="fold")
    xs = df["x"].dt.strftime("%Y-%m-%d %H:%M") if by == "run" else df["x"].astype(str)
    for r, x in zip(df.itertuples(), xs, strict=True):
        spread = f"{r.q1:.{digits}f} to {r.q3:.{digits}f}"
        table.add_row(Text(str(r.line)), Text(x), str(r.n), str(r.runs),
                      f"{r.median:.{digits}f}", spread)  # fmt: skip
    Console(width=160).print(table)


def history(ns: argparse.Namespace) -> int:
    root = ns.store or paths.store_dir()
    cell = [ns.model, ns.scenario, ns.metric]
    if any(cell) and not all(cell):
        raise usage.UsageError("expected MODEL SCENARIO METRIC, all three")
    if not (all(cell) or ns.add or ns.html):
        raise usage.UsageError("expected MODEL SCENARIO METRIC, --add RUN_DIR or --html DIR")
    for run_dir, n in store.merge(ns.add, root):
        print(f"store: {n} records of {run_dir} in {root}")
    if ns.html:
        print(f"history: {page.build_history(root, ns.html)}")
    if all(cell):
        df = store.series(root, ns.model, ns.scenario, ns.metric, by=ns.by)
        metric = metrics.METRICS[ns.metric]
        title = f"{metric.label} ({metric.unit}) of {ns.model} {ns.scenario}, ok records"
        _table(df, title, ns.by, metric.digits)
    return 0


main = entry(parser, history, store.StoreError)
