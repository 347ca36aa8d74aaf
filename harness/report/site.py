"""The published site, all links relative: index.html (badge, change points, runs index),
compat.html and badge.svg, history.html, latest/ (dashboard and claims of the published runs) and
runs/<run-id>/ (their records, which the compatibility page links to)."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from typing import TYPE_CHECKING

from harness import metrics
from harness.report import build, compat, store
from harness.report.dashboard import e

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    import pandas as pd

    from harness.records import Record

RUNS = "runs"
LATEST = "latest"
STATUSES = metrics.STATUSES

STYLE = """
body{font-family:system-ui,sans-serif;margin:0 auto;max-width:980px;padding:12px;color:#222}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.6em}
nav a{display:inline-block;margin:0 12px 8px 0}
.scroll{overflow-x:auto} table{border-collapse:collapse;font-size:.9em}
td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;white-space:nowrap}
li{margin:.3em 0} code{background:#f4f4f4;padding:1px 4px;word-break:break-all}
"""


class SiteError(Exception):
    """Nothing to publish, or a run folder that is not one: one line, exit code 2."""


def copy_runs(run_dirs: Sequence[Path], out: Path) -> list[Path]:
    """Each run's manifest and records under out/runs/<run-id>/, so links stay in the site."""
    copied: list[Path] = []
    for run_dir in run_dirs:
        records = build.load_records([run_dir])
        run_id = str(records[0].get("run_id") or run_dir.name)
        target = out / RUNS / store.file_name(run_id)
        (target / "raw").mkdir(parents=True, exist_ok=True)
        for jsonl in sorted((run_dir / "raw").glob("*.jsonl")):
            shutil.copy2(jsonl, target / "raw" / jsonl.name)
        if (run_dir / "run.json").is_file():
            shutil.copy2(run_dir / "run.json", target / "run.json")
        copied.append(target)
    return copied


def latest_rows(root: Path) -> pd.DataFrame:
    """The store's newest run of each stack: the compatibility picture as it stands now."""
    try:
        return store.query(
            root,
            f"SELECT * FROM {store.VIEW} QUALIFY run_time = max(run_time) OVER (PARTITION BY stack_id)",  # noqa: E501, S608
        )
    except store.StoreError as exc:
        raise SiteError(f"nothing to publish: {exc}") from None


def runs_index(root: Path) -> pd.DataFrame:
    """One row per run in the store: when, how many stacks and records, and their statuses."""
    counts = ", ".join(f"count(*) FILTER (WHERE status = '{s}') AS \"{s}\"" for s in STATUSES)
    return store.query(
        root,
        f"SELECT run_id, min(run_time) AS started, count(DISTINCT stack_id) AS stacks, "  # noqa: S608
        f"count(*) AS records, {counts} FROM {store.VIEW} GROUP BY run_id ORDER BY started DESC",
    )


def _runs_table(runs: pd.DataFrame, out: Path) -> str:
    head = "".join(f"<th>{e(c)}</th>" for c in ("run", "started", "stacks", "records", *STATUSES))
    rows = []
    for r in runs.to_dict("records"):
        run = str(r["run_id"])
        folder = out / RUNS / store.file_name(run)
        name = f'<a href="{e(f"{RUNS}/{store.file_name(run)}/raw/")}">{e(run)}</a>' if folder.is_dir() else e(run)  # fmt: skip  # noqa: E501
        cells = [name, e(str(r["started"])[:19]), e(r["stacks"]), e(r["records"])]
        cells += [e(r[s]) for s in STATUSES]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return f'<div class="scroll"><table><tr>{head}</tr>{"".join(rows)}</table></div>'


def landing(out: Path, runs: pd.DataFrame, steps: Sequence[str]) -> str:
    links = [(compat.PAGE, "Compatibility matrix"), (f"{LATEST}/index.html", "Dashboard"),
             (f"{LATEST}/claims.html", "Claims"), ("history.html", "History")]  # fmt: skip
    nav = "".join(
        f'<a href="{e(href)}">{e(text)}</a>' for href, text in links if (out / href).is_file()
    )
    found = "".join(f"<li>{e(s)}</li>" for s in steps) or "<li>none found</li>"
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>harness: compatibility</title><style>{STYLE}</style></head><body>"
        f'<h1>Model compatibility across releases</h1><p><a href="{compat.PAGE}">'
        f'<img src="{compat.BADGE}" alt="transformers compatibility"></a></p>'
        f"<nav>{nav}</nav><p>Badge for a README: <code>{e(compat.badge_markdown())}</code></p>"
        f"<h2>Change points</h2><ul>{found}</ul>"
        f"<h2>Runs</h2>{_runs_table(runs, out)}<p><small>published {e(now)}</small></p>"
        "</body></html>"
    )


def write_landing(out: Path, root: Path, steps: Sequence[str]) -> Path:
    page = out / "index.html"
    page.write_text(landing(out, runs_index(root), steps), encoding="utf-8")
    (out / "site.json").write_text(
        json.dumps({"published_at": dt.datetime.now(dt.timezone.utc).isoformat()}) + "\n",
        encoding="utf-8",
    )
    return page


def records_of(rows: pd.DataFrame) -> list[Record]:
    """Store rows as records for the pages that read records (their flat fields agree)."""
    out: list[Record] = rows.astype(object).where(rows.notna(), None).to_dict("records")  # type: ignore[assignment]
    return out
