"""summary.md, and the pipeline that writes every report of one or several runs."""

from __future__ import annotations

import html
import itertools
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from harness import metrics
from harness import records as rec
from harness.report import claims, compat, dashboard, plots
from harness.report.tables import (
    failures,
    model_order,
    number,
    plural,
    short,
    stack_order,
    summarize,
    to_frame,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Iterable, Sequence

    from harness.records import Record

# A GitHub PR comment holds 65,536 characters; leave room for a bot's own header.
MARKDOWN_BUDGET = 60_000
MESSAGE_CHARS = 160
TIMES, DASH = "\N{MULTIPLICATION SIGN}", "\N{EN DASH}"


class ReportError(Exception):
    """Bad input (a missing folder, no records): one line on stderr, exit code 2."""


@dataclass(frozen=True)
class ReportPaths:
    """What build_reports wrote; png_note: why PNGs were asked for but not written."""

    out_dir: Path
    parquet: Path
    csv: Path
    markdown: Path
    index_html: Path
    claims_html: Path
    plotly_js: Path
    compat_html: Path
    pngs: tuple[Path, ...] = ()
    png_note: str | None = None


def load_records(run_dirs: Sequence[Path]) -> list[Record]:
    records: list[Record] = []
    seen: set[Path] = set()
    for run_dir in run_dirs:
        if not run_dir.is_dir():
            raise ReportError(f"{run_dir}: no such run folder")
        if run_dir.resolve() in seen:  # reports/latest and its target are one run
            continue
        seen.add(run_dir.resolve())
        try:
            found = rec.read_run(run_dir)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ReportError(f"{run_dir}: unreadable record file ({exc})") from None
        if not found:
            raise ReportError(f"{run_dir}: no records in {run_dir / 'raw'}/*.jsonl")
        records.extend(found)
    if not records:
        raise ReportError("no run folders given")
    return records


def md_cell(text: object, limit: int = MESSAGE_CHARS) -> str:
    """Record text made safe for a table cell: no HTML, no pipes, one line."""
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    return html.escape(short(str(text), limit), quote=False).replace("|", "\\|")


def _spread(row: dict[Hashable, Any], metric: str) -> str:
    digits = metrics.METRICS[metric].digits
    median, low, high = (number(row[f"{metric}_{s}"], digits) for s in ("median", "min", "max"))
    return median if low == high else f"{median} ({low}{DASH}{high})"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def _machines(df: pd.DataFrame) -> str:
    labels = df.groupby("machine_fingerprint")["machine"].first()
    return ", ".join(
        f"`{fp}` ({md_cell(label)})" if isinstance(label, str) else f"`{fp}`"
        for fp, label in labels.items()
    )


def _md_header(df: pd.DataFrame, several: bool) -> list[str]:
    counts = df["status"].value_counts()
    ordered = sorted(counts.index, key=metrics.STATUSES.index)
    status = " · ".join(f"{counts[s]} {s}" for s in ordered)
    runs = ", ".join(md_cell(r) for r in df["run_id"].unique())
    sizes = (
        f"{plural(df['stack_id'].nunique(), 'stack')} · {plural(df['model'].nunique(), 'model')}"
        f" · {plural(df['scenario'].nunique(), 'scenario')} · {plural(len(df), 'record')}"
    )
    where = f"{'machines' if several else 'machine'} {_machines(df)}"
    lines = ["## Load and generate report", "", f"Runs {runs} · {sizes} · {where}", "",
             f"**Status:** {status}", ""]  # fmt: skip
    if several:
        lines += ["**Several machines:** their rows are kept apart, never averaged.", ""]
    return lines


def _md_stacks(df: pd.DataFrame) -> list[str]:
    status = df["status"]
    counts = pd.DataFrame({
        "stack_id": df["stack_id"], "ok": status == "ok", "unsupported": status == "unsupported",
        "failed": ~status.isin(metrics.GOOD_STATUSES),
        "golden": df["golden"].isin(metrics.GOLDEN_FAILING),
    }).groupby("stack_id")  # fmt: skip
    sums, sizes = counts.sum().to_dict("index"), counts.size().to_dict()
    firsts = df.groupby("stack_id")[["transformers_version", "torch_version"]].first()
    versions = firsts.to_dict("index")
    rows = [
        [md_cell(stack), md_cell(versions[stack]["transformers_version"]) or "-",
         md_cell(versions[stack]["torch_version"]) or "-", str(sizes[stack]),
         *(str(int(sums[stack][c])) for c in ("ok", "unsupported", "failed", "golden"))]
        for stack in stack_order(df)
    ]  # fmt: skip
    header = ["stack", "transformers", "torch", "records", "ok", "unsupported", "failed",
              "golden fails"]  # fmt: skip
    return [*_table(header, rows), ""]


def _md_failures(df: pd.DataFrame, several: bool) -> list[str]:
    keys = ["machine_fingerprint", "stack_id", "cell_id", "status", "message"]
    bad = failures(df).groupby(keys, sort=False, dropna=False)["repeat"].count().reset_index()
    lines = [f"### Failures ({int(bad['repeat'].sum())})", ""]
    if bad.empty:
        return [*lines, "None: every record is ok or unsupported.", ""]
    rows = [
        [*([f"`{r.machine_fingerprint}`"] if several else []), md_cell(r.stack_id),
         md_cell(r.cell_id), md_cell(r.status), str(r.repeat), md_cell(r.message)]
        for r in bad.itertuples()
    ]  # fmt: skip
    head = [*(["machine"] if several else []), "stack", "cell", "status", "runs", "message"]
    return [*lines, *_table(head, rows), ""]


def _md_results(summary: pd.DataFrame, several: bool, budget: int) -> list[str]:
    header = [*(["machine"] if several else []), "stack", "model", "scenario", "n", "status",
              "golden", *(m.column for m in metrics.SHOWN)]  # fmt: skip
    body = []
    for row in summary.to_dict("records"):
        cells = [f"`{row['machine_fingerprint']}`"] if several else []
        cells += [md_cell(row["stack_id"]), md_cell(row["model"]), md_cell(row["scenario"]),
                  str(row["n"]), md_cell(row["statuses"]),
                  md_cell(row["golden"]) or "-"]  # fmt: skip
        cells += [_spread(row, m.name) for m in metrics.SHOWN]
        body.append(cells)
    lines = [
        "### Results",
        "",
        (
            f"Medians over the ok repeats, min{DASH}max in brackets. Memory is MiB above the "
            "RSS just before `from_pretrained`; anon and file split the RSS after generate; "
            "peak/weights is the peak over the size of the parameters."
        ),
        "",
        f"<details><summary>{len(summary)} rows: stack {TIMES} model {TIMES} scenario</summary>",
        "",
    ]
    table = _table(header, body)
    used = sum(len(x) + 1 for x in lines) + 100
    # The running sizes only grow: counting those under budget finds where the table stops.
    kept = 2 + sum(used + n < budget for n in itertools.accumulate(len(x) + 1 for x in table[2:]))
    lines += table[:kept]
    if kept < len(table):
        lines += ["", f"… {len(table) - kept} more rows in summary.csv"]
    return [*lines, "", "</details>", ""]


def render_markdown(df: pd.DataFrame, summary: pd.DataFrame) -> str:
    """GitHub-flavoured markdown that fits a PR comment; the long table folds away."""
    several = df["machine_fingerprint"].unique().size > 1
    lines = _md_header(df, several) + _md_stacks(df) + _md_failures(df, several)
    budget = MARKDOWN_BUDGET - sum(len(x) + 1 for x in lines)
    return "\n".join(lines + _md_results(summary, several, budget))


def _write_tables(df: pd.DataFrame, summary: pd.DataFrame, out: Path) -> tuple[Path, ...]:
    out.mkdir(parents=True, exist_ok=True)
    parquet, csv, md = out / "results.parquet", out / "summary.csv", out / "summary.md"
    df.to_parquet(parquet, index=False)
    summary.to_csv(csv, index=False, float_format="%.6g")
    text = render_markdown(df, summary)
    md.write_text(text, encoding="utf-8")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with Path(step_summary).open("a", encoding="utf-8") as fh:
            fh.write(text + "\n")
    return parquet, csv, md


def build_reports(
    run_dirs: Sequence[Path],
    out_dir: Path | None = None,
    *,
    png: bool = False,
    steps: Callable[[Sequence[Record]], Sequence[str]] | None = None,
) -> ReportPaths:
    """Load, summarize and write every report of the given runs; raises ReportError.
    `steps`: the change points of the records, as sentences (the commands pass decide's)."""
    records = load_records(run_dirs)  # no folders: ReportError too
    out = out_dir if out_dir is not None else run_dirs[0]
    raw = [d / "raw" for d in run_dirs]
    found = steps(records) if steps else ()
    return write_reports(records, to_frame(records), out, raw_dirs=raw, png=png, steps=found)


def write_reports(
    records: Sequence[Record], df: pd.DataFrame, out: Path, *,
    raw_dirs: Sequence[Path] = (), png: bool = False, steps: Sequence[str] = (),
    compat_page: Path | None = None,
) -> ReportPaths:  # fmt: skip
    """Every report of records and their tidy frame (a run's, or the results store's rows).
    `compat_page`: a compatibility page already built elsewhere, which the pages link to."""
    summary = summarize(df)
    parquet, csv, md = _write_tables(df, summary, out)
    figures = plots.all_figures(df, stacks=stack_order(df), models=model_order(df))
    page = compat_page or out / compat.PAGE
    site = dashboard.write_site(
        out, df, summary, figures, claims=claims.evaluate(df), slopes=plots.size_slopes(df),
        steps=steps, compat=Path(os.path.relpath(page, out)).as_posix(),
    )  # fmt: skip
    pngs, note = plots.export_pngs(figures, out / "png") if png else ((), None)
    if compat_page is None:  # last: its nav links the dashboard only once index.html exists
        compat.build_compat(records, out, raw_dirs=raw_dirs)
    return ReportPaths(out, parquet, csv, md, *site, page, pngs, note)
