"""index.html (charts, failures, results) and claims.html, opening offline from file:// beside a
copied plotly.min.js. Record strings are escaped; figures travel as a JSON data block drawn by one
fixed loader, and the Content-Security-Policy allows only it and plotly.min.js."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import plotly
import plotly.io as pio
from plotly.offline import get_plotlyjs

from harness import metrics
from harness.report import tables

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    import pandas as pd
    import plotly.graph_objects as go

    from harness.report.claims import Claim

PLOTLY_JS = "plotly.min.js"
LOADER = """(function () {
  var box = document.getElementById("figures");
  if (typeof Plotly === "undefined") {
    box.insertAdjacentText("beforebegin", "plotly.min.js is missing next to this page.");
    return;
  }
  var figures = JSON.parse(box.textContent);
  Object.keys(figures).forEach(function (name) {
    var fig = figures[name];
    Plotly.newPlot("chart-" + name, fig.data, fig.layout,
                   {displaylogo: false, responsive: true});
  });
})();"""
CHART_TEXT = {
    "memory": ("Memory per stack",
               ("Anonymous and file-backed RSS after generate (stacked), the peak as a diamond; "
                "per low_cpu_mem_usage and dtype, model and checkpoint format.")),
    "peak_ratio": ("Peak over weights",
                   "Peak RSS over the size of the parameters. 1.0 is the floor: the weights."),
    "speed": ("Load time and decode speed", "from_pretrained seconds and decode tokens/s."),
    "compatibility": ("Compatibility",
                      "Status and golden verdict per stack and scenario; hover for messages."),
    "memory_vs_size": ("Memory against model size",
                       "Peak memory across the model presets with a least-squares slope."),
}  # fmt: skip
STYLE = """body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;max-width:1400px;padding:0 16px;
color:#222}nav{display:flex;gap:16px;padding:10px 0;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:8px 0 20px;font-size:13px}td,th{border:1px solid #ddd;
padding:3px 7px;text-align:left;vertical-align:top}th{background:#f4f4f4}
td.n{text-align:right;font-variant-numeric:tabular-nums}.chart{min-height:300px}
.v-holds{color:#1a7f37}.v-does-not-hold{color:#cf222e}.v-partly-holds{color:#9a6700}
.v-no-evidence-in-this-run,.v-depends-on-the-version{color:#57606a}
code,pre{font-family:ui-monospace,monospace;font-size:12px}pre{white-space:pre-wrap;margin:0}
.msg{max-width:700px;word-break:break-word}"""


def e(value: object) -> str:
    """Escape anything for HTML text or a quoted attribute; NaN and None become empty."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return html.escape(str(value), quote=True)


def _csp_hash(script: str) -> str:
    digest = hashlib.sha256(script.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


def csp(loader: str | None) -> str:
    """The pages' Content-Security-Policy: no script but `loader` and plotly.min.js, if any."""
    scripts = f"'self' file: {_csp_hash(loader)}" if loader else "'none'"
    return (
        f"default-src 'none'; script-src {scripts}; style-src 'unsafe-inline'; "
        "img-src data: blob:; font-src data:"
    )


def script_json(text: str) -> str:
    # Safe inside a <script> data block: <, > and & occur only within JSON strings, where the
    # \u escapes mean the same.
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _page(title: str, body: str, *, scripts: bool, compat: str) -> str:
    head_js = f'<script src="{PLOTLY_JS}"></script>' if scripts else ""
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{csp(LOADER if scripts else None)}">'
        f"<title>{e(title)}</title><style>{STYLE}</style>{head_js}</head>\n<body>\n"
        '<nav><a href="index.html">Dashboard</a><a href="claims.html">Claims</a>'
        f'<a href="{e(compat)}">Compatibility</a>'
        '<a href="summary.md">summary.md</a><a href="summary.csv">summary.csv</a>'
        '<a href="results.parquet">results.parquet</a></nav>\n'
        f"{body}\n</body></html>\n"
    )


def table(header: Sequence[str], rows: Iterable[Sequence[str]], numeric: Sequence[bool]) -> str:
    """Cells must already be escaped HTML; header strings are escaped here."""
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    td = ("<td>{}</td>", '<td class="n">{}</td>')
    cells = ("".join(td[n].format(c) for c, n in zip(r, numeric, strict=True)) for r in rows)
    body = "".join(f"<tr>{row}</tr>\n" for row in cells)
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


def _header(df: pd.DataFrame) -> str:
    counts = df["status"].value_counts()
    status = ", ".join(
        f"{counts[s]} {e(s)}" for s in sorted(counts.index, key=metrics.STATUSES.index)
    )
    machines = df.groupby("machine_fingerprint")["machine"].first()
    machine_list = "; ".join(f"<code>{e(fp)}</code> {e(label)}" for fp, label in machines.items())
    several = "<p><strong>Records come from several machines:</strong> every table and chart "
    warn = several + "keeps them apart.</p>" if len(machines) > 1 else ""
    runs = ", ".join(e(r) for r in df["run_id"].unique())
    goldens = df["golden"].value_counts()
    verdicts = ", ".join(f"{goldens[v]} {e(v)}" for v in metrics.GOLDEN_VERDICTS if v in goldens)
    missing = int(goldens.get("missing", 0))
    if missing:
        warn += (f'<p class="v-does-not-hold"><strong>{missing} records have no golden</strong>: '
                 "their outputs are not checked (record them with <code>nox -s golden</code>).</p>")  # fmt: skip  # noqa: E501
    return (
        f"<h1>Load and generate report</h1><p>Runs {runs}: {len(df)} records, "
        f"{df['stack_id'].nunique()} stacks, {df['model'].nunique()} models, "
        f"{df['scenario'].nunique()} scenarios. Machine: {machine_list}.</p>"
        f"<p>Status: {status}. Golden: {verdicts or 'none'}.</p>{warn}"
    )


def _problems(df: pd.DataFrame, *, failures: bool) -> str:
    unsupported = df.loc[df["status"] == "unsupported"]
    rows = (
        tables.failures(df) if failures else tables.sort_stacks(unsupported, tables.stack_order(df))
    )
    if rows.empty:
        return "<p>None.</p>"
    # One row per message: a library refusal repeats across many cells and repeats.
    keys = ["machine_fingerprint", "stack_id", "status", "golden", "message"]
    body = []
    for (fp, stack, status, golden, message), group in rows.groupby(keys, sort=False, dropna=False):
        cells: dict[str, list[str]] = {}
        notes: dict[str, str] = {}
        for cell, repeat, detail in zip(
            group["cell_id"], group["repeat"], group["golden_detail"], strict=True
        ):
            cells.setdefault(str(cell), []).append(str(repeat))
            notes.setdefault(str(cell), tables.golden_note(detail))
        listed = "<br>".join(
            f"{e(cell)} #{e(','.join(reps))}" + (f" ({e(notes[cell])})" if notes[cell] else "")
            for cell, reps in cells.items()
        )
        verdict = f"golden {e(golden)}" if isinstance(golden, str) else ""
        trace = group["traceback"].dropna()
        extra = (
            f"<details><summary>traceback</summary><pre>{e(trace.iloc[0])}</pre></details>"
            if len(trace)
            else ""
        )
        body.append([f"<code>{e(fp)}</code>", e(stack), e(status), verdict, listed,
                     f'<div class="msg">{e(message)}{extra}</div>'])  # fmt: skip
    header = ["machine", "stack", "status", "golden", "cells #repeats", "message"]
    return table(header, body, [False] * 6)


def _summary_table(summary: pd.DataFrame) -> str:
    shown = metrics.SHOWN
    header = ["machine", "stack", "model", "scenario", "n", "status", "golden",
              *(m.column for m in shown)]  # fmt: skip
    rows = (
        [f"<code>{e(r['machine_fingerprint'])}</code>", e(r["stack_id"]), e(r["model"]),
         e(r["scenario"]), str(int(r["n"])), e(r["statuses"]), e(r["golden"]) or "-"]
        + [tables.number(r[f"{m.name}_median"], m.digits, "") for m in shown]
        for r in summary.to_dict("records")
    )  # fmt: skip
    return table(header, rows, [False] * 4 + [True] + [False] * 2 + [True] * len(shown))


def _slopes_table(slopes: pd.DataFrame) -> str:
    if slopes.empty:
        return "<p>No slope: the reference scenario ran ok for fewer than two model sizes.</p>"
    rows = (
        [f"<code>{e(r.machine_fingerprint)}</code>", e(r.stack_id), str(r.models),
         *(tables.number(v, d, "") for v, d in ((r.mib_per_m_params, 2), (r.intercept_mb, 1),
                                                (r.r2, 3)))]
        for r in slopes.itertuples()
    )  # fmt: skip
    header = ["machine", "stack", "models", "MiB per M params", "intercept MiB", "r²"]
    return table(header, rows, [False, False, True, True, True, True])


def _steps(steps: Sequence[str]) -> str:
    """Where metrics step along the releases (harness.decide.changepoints' sentences)."""
    if not steps:
        return "<p>None: no metric, status or golden verdict steps between these stacks.</p>"
    return "<ul>" + "".join(f"<li>{e(s)}</li>" for s in steps) + "</ul>"


def render_index(
    df: pd.DataFrame,
    summary: pd.DataFrame,
    figures: dict[str, go.Figure],
    slopes: pd.DataFrame,
    *,
    steps: Sequence[str],
    compat: str,
) -> str:
    parts = [
        f"{json.dumps(name)}:{pio.to_json(fig, validate=False, engine='json')}"
        for name, fig in figures.items()
    ]
    data = script_json("{" + ",".join(parts) + "}")
    charts = []
    for name in figures:
        title, text = CHART_TEXT.get(name, (name, ""))
        extra = _slopes_table(slopes) if name == "memory_vs_size" else ""
        charts.append(
            f"<section><h2>{e(title)}</h2><p>{e(text)}</p>"
            f'<div class="chart" id="chart-{e(name)}" data-chart="{e(name)}"></div>'
            f"{extra}</section>"
        )
    body = (
        _header(df)
        + "<h2>Failures</h2>"
        + _problems(df, failures=True)
        + "<h2>Refused by the library (unsupported)</h2>"
        + _problems(df, failures=False)
        + '<h2 id="change-points">Change points</h2>'
        + _steps(steps)
        + "".join(charts)
        + "<h2>Results</h2><p>Medians over the ok repeats; memory in MiB above the RSS "
        "just before from_pretrained.</p>"
        + _summary_table(summary)
        + f'<script type="application/json" id="figures">{data}</script>'
        + f"<script>{LOADER}</script>"
    )
    return _page("Load and generate report", body, scripts=True, compat=compat)


def _verdict_class(verdict: str) -> str:
    return "v-" + "-".join(verdict.split(" (", maxsplit=1)[0].split())


def render_claims(df: pd.DataFrame, claims: Sequence[Claim], compat: str) -> str:
    sections = []
    for claim in claims:
        head = claim.headline()
        rows = (
            [e(f.version), f'<span class="{_verdict_class(f.verdict)}">{e(f.verdict)}</span>',
             e(f.evidence)]
            for f in claim.findings
        )  # fmt: skip
        findings = (
            table(["transformers", "verdict", "evidence"], rows, [False] * 3)
            if claim.findings
            else f"<p>{e('no evidence in this run: no record names a transformers version')}</p>"
        )
        sections.append(
            f'<section id="claim-{e(claim.key)}"><h2>“{e(claim.statement)}”</h2>'
            f'<p>Verdict: <strong class="{_verdict_class(head)}">'
            f"{e(head)}</strong></p><p>Method: {e(claim.method)}</p>{findings}</section>"
        )
    runs = ", ".join(e(r) for r in df["run_id"].unique())
    body = (
        f"<h1>Loading claims, measured</h1><p>Verdicts computed from the {len(df)} records of "
        f"runs {runs}, per transformers version.</p>" + "".join(sections)
    )
    return _page("Loading claims, measured", body, scripts=False, compat=compat)


def copy_plotly(out: Path) -> Path:
    """plotly.min.js from the plotly package into `out` (kept if already the same size)."""
    js = out / PLOTLY_JS
    shipped = Path(plotly.__file__).parent / "package_data" / PLOTLY_JS
    if shipped.is_file():
        if not js.is_file() or js.stat().st_size != shipped.stat().st_size:
            shutil.copyfile(shipped, js)
    else:
        js.write_text(get_plotlyjs(), encoding="utf-8")
    return js


def write_site(
    out: Path,
    df: pd.DataFrame,
    summary: pd.DataFrame,
    figures: dict[str, go.Figure],
    *,
    claims: Sequence[Claim],
    slopes: pd.DataFrame,
    steps: Sequence[str] = (),
    compat: str = "compat.html",
) -> tuple[Path, Path, Path]:
    """Writes index.html, claims.html and plotly.min.js into `out`; `compat`: the nav's link
    to the compatibility page."""
    out.mkdir(parents=True, exist_ok=True)
    js = copy_plotly(out)
    index = out / "index.html"
    index.write_text(
        render_index(df, summary, figures, slopes, steps=steps, compat=compat), encoding="utf-8"
    )
    claims_page = out / "claims.html"
    claims_page.write_text(render_claims(df, claims, compat), encoding="utf-8")
    return index, claims_page, js
