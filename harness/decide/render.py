"""A comparison or a walk as a rich table, markdown (a PR, a step summary) and JSON.

The formatters return text or data; `emit` and `emit_walk` alone print and write files.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness import metrics
from harness.decide import changepoints, walk
from harness.decide.verdicts import VERDICTS, Comparison, Row, RowVerdict

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence
    from pathlib import Path

JSON_VERSION = 1
# Shown unless asked for everything: what changed, or might have.
NOTEWORTHY: tuple[RowVerdict, ...] = ("worse", "better", "uncertain")
_STYLE: dict[RowVerdict, str] = {
    "worse": "bold red", "better": "green", "uncertain": "yellow", "same": "", "n/a": "dim",
}  # fmt: skip


@dataclass(frozen=True)
class Outputs:
    markdown: Path | None = None
    json: Path | None = None
    step_summary: Path | None = None  # $GITHUB_STEP_SUMMARY: markdown is appended
    all_rows: bool = False  # the terminal table shows `same` rows too


def _value(row: Row, which: float | str | None) -> str:
    if which is None:
        return "-"
    if isinstance(which, str):
        return which
    unit = metrics.METRICS[row.metric].unit if row.metric in metrics.METRICS else None
    if unit == "tokens/s":
        return f"{which:.1f}/s"
    if unit == "MiB" or row.category == "memory":
        return f"{which:.2f} MiB"
    return f"{which:.4f} s"


def cells(row: Row) -> list[str]:
    """group, cell, metric, better, base, candidate, change, CI, p, n, verdict, reason."""
    ci = "-" if row.low is None or row.high is None else f"{row.low:+.1%} .. {row.high:+.1%}"
    return [
        row.group, row.cell, row.metric, row.better, _value(row, row.base),
        _value(row, row.candidate), "-" if row.change is None else f"{row.change:+.1%}", ci,
        "-" if row.p_value is None else f"{row.p_value:.2g}", f"{row.n_base}/{row.n_candidate}",
        row.verdict, row.reason,
    ]  # fmt: skip


HEADERS = ("group", "cell", "metric", "better", "base", "candidate", "change", "CI",
           "p", "n", "verdict", "why")  # fmt: skip


def counts(rows: Iterable[Row]) -> dict[RowVerdict, int]:
    found = Counter(r.verdict for r in rows)
    return {k: found[k] for k in VERDICTS if found[k]}


def _columns(rows: Sequence[Row]) -> list[int]:
    """Leave the group column out when no row has one."""
    return [i for i in range(len(HEADERS)) if i != 0 or any(r.group for r in rows)]


def _headline(comparison: Comparison) -> str:
    failures = comparison.failures()
    policy = ", ".join(comparison.settings.fail_on) or "nothing"
    tally = ", ".join(f"{v} {k}" for k, v in counts(comparison.rows).items()) or "no rows"
    verdict = f"FAIL: {len(failures)} worse under fail-on ({policy})" if failures else "PASS"
    return f"{verdict}; {tally}"


def table(comparison: Comparison, *, all_rows: bool = False) -> Table:
    s = comparison.settings
    title = (
        f"{comparison.base} -> {comparison.candidate}  (thresholds: memory {s.memory:.0%}, "
        f"time {s.time:.0%}; {1 - s.alpha:.0%} CI; min {s.min_repeats} repeats)"
    )
    shown = [r for r in comparison.rows if all_rows or r.verdict in NOTEWORTHY]
    t = Table(title=Text(title))
    keep = _columns(comparison.rows)
    for i in keep:
        t.add_column(HEADERS[i], overflow="fold")
    for r in shown:
        text = cells(r)
        # Text, not markup: a reason or an id with brackets is shown as it is.
        t.add_row(*(Text(text[i]) for i in keep), style=_STYLE[r.verdict])
    return t


def emit(out: Outputs, comparison: Comparison) -> None:
    console = Console(width=200)
    console.print(table(comparison, all_rows=out.all_rows))
    hidden = sum(1 for r in comparison.rows if r.verdict not in NOTEWORTHY)
    if hidden and not out.all_rows:
        console.print(f"{hidden} rows `same` or `n/a` not shown (--all shows them)", markup=False)
    for note in comparison.notes:
        console.print(f"note: {note}", markup=False)
    console.print(_headline(comparison), markup=False)
    _write(out, markdown(comparison), to_json(comparison))


def _md_row(items: Iterable[str]) -> str:
    return "| " + " | ".join(i.replace("|", "\\|").replace("\n", " ") for i in items) + " |"


def _md_table(rows: Sequence[Row]) -> list[str]:
    keep = _columns(rows)
    lines = [_md_row(HEADERS[i] for i in keep), _md_row("---" for _ in keep)]
    lines += [_md_row(cells(r)[i] for i in keep) for r in rows]
    return lines


def markdown(comparison: Comparison) -> str:
    changed = [r for r in comparison.rows if r.verdict in NOTEWORTHY]
    lines = [f"## Compare `{comparison.base}` -> `{comparison.candidate}`", ""]
    lines += [f"**{_headline(comparison)}**", ""]
    lines += _md_table(changed) if changed else ["No metric changed beyond its threshold."]
    lines += ["", f"<details><summary>all {len(comparison.rows)} rows</summary>", ""]
    lines += [*_md_table(comparison.rows), "", "</details>"]
    lines += [f"- note: {n}" for n in comparison.notes]
    return "\n".join(lines) + "\n"


def to_json(comparison: Comparison) -> dict[str, object]:
    failures = comparison.failures()
    return {
        "json_version": JSON_VERSION,
        "base": comparison.base,
        "candidate": comparison.candidate,
        "settings": dataclasses.asdict(comparison.settings),
        "counts": counts(comparison.rows),
        "failures": len(failures),
        "exit_code": 1 if failures else 0,
        "notes": list(comparison.notes),
        "rows": [dataclasses.asdict(r) for r in comparison.rows],
    }


def _write(out: Outputs, md: str, data: Mapping[str, object]) -> None:
    if out.markdown is not None:
        out.markdown.write_text(md, encoding="utf-8")
    if out.step_summary is not None:
        with out.step_summary.open("a", encoding="utf-8") as fh:
            fh.write(md)
    if out.json is not None:
        out.json.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def emit_walk(
    out: Outputs,
    run: str,
    steps: Sequence[walk.Step],
    notes: Sequence[str],
    points: Sequence[changepoints.ChangePoint] = (),
) -> None:
    """The walk's sentences, then the change points: each step's first release and its size."""
    console = Console(width=200)
    found = walk.changes(steps)
    order = [steps[0].base, *(s.candidate for s in steps)] if steps else []
    lines = [" -> ".join(order)] if steps else []
    lines += [walk.sentence(step, row) for step, row in found]
    if not found:
        lines.append("no change between adjacent stacks beyond the thresholds")
    n = walk.uncertain(steps)
    if n:
        lines.append(f"{n} further changes are uncertain (too few repeats, or within the noise)")
    found_points = [f"change point: {changepoints.sentence(p)}" for p in points]
    no_points = ["no change point in any series beyond its noise"]
    for line in [*lines, *(f"note: {n}" for n in notes), *(found_points or no_points)]:
        console.print(line, markup=False, soft_wrap=True)
    md = "\n".join([f"## Version walk of `{run}`", "", *(f"- {ln}" for ln in lines), ""])
    if found_points:
        md += "\n".join(["", "### Change points", "", *(f"- {ln}" for ln in found_points), ""])
    data = {
        "json_version": JSON_VERSION,
        "run": run,
        "order": order,
        "sentences": lines,
        "notes": list(notes),
        "steps": [dataclasses.asdict(s) for s in steps],
        "change_points": [
            {**dataclasses.asdict(p), "sentence": changepoints.sentence(p)} for p in points
        ],
    }
    _write(out, md, data)
