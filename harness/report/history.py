"""history.html: each (model, scenario, metric) across runs and releases, from the store. DuckDB
aggregates (median, quartiles per group; runs into time buckets past a point budget), so the page
holds numbers, never records; one fixed loader draws them, record strings reach the DOM as text.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np

from harness import metrics
from harness.config import ids
from harness.report import dashboard, store
from harness.report.dashboard import e, script_json

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from pathlib import Path

    import duckdb
    import pandas as pd

# A mark: (model, scenario, metric, release, label), e.g. a change point's first release.
Mark = tuple[str, str, str, str, str]
PAGE = "history.html"
# The dashboard's results columns; `harness history` prints any metric of the registry.
SHOWN = tuple(m.name for m in metrics.SHOWN)
# At most this many (cell, metric, stack, run) points across runs: about 3 MB of page.
POINT_BUDGET = 100_000
BUCKETS = ("1 day", "7 days", "30 days", "91 days", "365 days")
LOADER = """(function () {
  var box = document.getElementById("history");
  if (typeof Plotly === "undefined") {
    box.insertAdjacentText("beforebegin", "plotly.min.js is missing next to this page.");
    return;
  }
  var d = JSON.parse(box.textContent);
  var pick = {m: document.getElementById("pick-model"), s: document.getElementById("pick-scenario"),
              k: document.getElementById("pick-metric")};
  // Plotly reads names as HTML-ish labels: escaped, they show their characters.
  function esc(s) {
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  var have = {};
  Object.keys(d.run).concat(Object.keys(d.release)).forEach(function (key) {
    var p = key.split(",");
    var m = (have[p[0]] = have[p[0]] || {});
    (m[p[1]] = m[p[1]] || {})[p[2]] = true;
  });
  function codes(obj) {
    return Object.keys(obj || {}).sort(function (a, b) { return a - b; });
  }
  function fill(select, list, names) {
    var keep = select.value;
    select.textContent = "";
    list.forEach(function (c) {
      var o = document.createElement("option");
      o.value = c;
      o.textContent = names[c];
      select.appendChild(o);
    });
    if (list.indexOf(keep) >= 0) { select.value = keep; }
  }
  function traces(series, xs, lines) {
    return (series || []).map(function (s) {
      var med = s[2], q1 = s[3], q3 = s[4];
      return {
        type: "scatter", mode: "lines+markers", name: esc(lines[s[0]]),
        x: s[1].map(function (i) { return xs[i]; }), y: med,
        error_y: {type: "data", symmetric: false, thickness: 1, width: 3,
                  array: med.map(function (v, i) { return q3[i] - v; }),
                  arrayminus: med.map(function (v, i) { return v - q1[i]; })},
        customdata: med.map(function (v, i) { return [q1[i], q3[i], s[5][i], s[6][i]]; }),
        hovertemplate: "%{x}<br>median %{y}<br>quartiles %{customdata[0]} to " +
          "%{customdata[1]}<br>%{customdata[2]} records, %{customdata[3]} runs"
      };
    });
  }
  function layout(metric, xtitle) {
    return {height: 420, margin: {t: 20, r: 20}, legend: {orientation: "h", y: -0.25},
            xaxis: {title: {text: xtitle}, automargin: true},
            yaxis: {title: {text: esc(metric[1] + " (" + metric[2] + ")")}, rangemode: "tozero"}};
  }
  function draw() {
    var key = [pick.m.value, pick.s.value, pick.k.value].join(",");
    var metric = d.metrics[pick.k.value];
    var config = {displaylogo: false, responsive: true};
    Plotly.react("chart-run", traces(d.run[key], d.times, d.stacks),
                 layout(metric, d.bucket === "run" ? "run started" : "runs of " + d.bucket),
                 config);
    var rel = layout(metric, "transformers release");
    var marks = d.marks[key] || [], used = {};
    (d.release[key] || []).forEach(function (s) {
      s[1].forEach(function (i) { used[d.releases[i]] = true; });
    });
    marks.forEach(function (mk) { used[mk[0]] = true; });
    rel.xaxis.type = "category";
    rel.xaxis.categoryorder = "array";
    rel.xaxis.categoryarray = d.releases.filter(function (r) { return used[r]; });
    rel.shapes = marks.map(function (mk) {
      return {type: "line", xref: "x", yref: "paper", x0: mk[0], x1: mk[0], y0: 0, y1: 1,
              line: {color: "#cf222e", dash: "dot", width: 2}};
    });
    rel.annotations = marks.map(function (mk) {
      return {x: mk[0], xref: "x", y: 1, yref: "paper", yanchor: "bottom", xanchor: "left",
              showarrow: false, text: esc(mk[1]), font: {color: "#cf222e"}};
    });
    Plotly.react("chart-release", traces(d.release[key], d.releases, d.torches), rel, config);
  }
  function refresh() {
    fill(pick.s, codes(have[pick.m.value]), d.scenarios);
    fill(pick.k, codes((have[pick.m.value] || {})[pick.s.value]), d.metrics.map(function (m) {
      return m[1] + " (" + m[0] + ")";
    }));
    draw();
  }
  fill(pick.m, codes(have), d.models);
  pick.m.addEventListener("change", refresh);
  pick.s.addEventListener("change", refresh);
  pick.k.addEventListener("change", draw);
  refresh();
})();"""


OK = "ok_records"  # the temp table `_load` fills: one scan of the store's files


def _load(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The ok records' keys and shown metrics into memory; the shown metrics that have values."""
    cols = ", ".join(f'"{m}"' for m in SHOWN)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {OK} AS SELECT model, scenario, stack_id, run_id, "  # noqa: S608
        "run_time, transformers_version, coalesce(torch_version, '?') AS torch_version, "
        f"{cols} FROM {store.VIEW} WHERE status = 'ok'"
    )
    counts = ", ".join(f'count("{m}")' for m in SHOWN)
    row = con.execute(f"SELECT {counts} FROM {OK}").fetchone() or ()  # noqa: S608 - constants
    return [m for m, n in zip(SHOWN, row, strict=True) if n]


def pick_bucket(con: duckdb.DuckDBPyConnection, n_metrics: int, budget: int) -> str | None:
    """None (every run its own point) if that fits the budget, else the finest bucket that does."""
    for bucket in (None, *BUCKETS):
        x = "run_id" if bucket is None else f"time_bucket(INTERVAL '{bucket}', run_time)"
        sql = (
            f"SELECT count(*) FROM (SELECT DISTINCT model, scenario, stack_id, {x} "  # noqa: S608
            f"FROM {OK} WHERE run_time IS NOT NULL)"
        )
        row = con.execute(sql).fetchone()
        if row is not None and row[0] * n_metrics <= budget:
            return bucket
    return BUCKETS[-1]


def _spreads(  # noqa: PLR0917 - the parts of one query
    con: duckdb.DuckDBPyConnection, shown: Sequence[str], line: str, x: str, group: str, known: str
) -> pd.DataFrame:
    """Per group of the records where column `known` is, every metric's n, runs and quartiles
    in one pass (runs: those with a value of it), then one row per (group, metric)."""
    aggs = ", ".join(
        f'count("{m}") AS "{m}__n", quantile_cont("{m}", [0.25, 0.5, 0.75]) AS "{m}__q", '
        f'count(DISTINCT run_id) FILTER (WHERE "{m}" IS NOT NULL) AS "{m}__runs"'
        for m in shown
    )
    rows = " UNION ALL ".join(
        f"SELECT model, scenario, '{m}' AS metric, line, x, \"{m}__n\" AS n, "  # noqa: S608
        f'"{m}__runs" AS runs, "{m}__q"[2] AS median, "{m}__q"[1] AS q1, "{m}__q"[3] AS q3 '
        f'FROM wide WHERE "{m}__n" > 0'
        for m in shown
    )
    return con.execute(
        f"WITH wide AS MATERIALIZED (SELECT model, scenario, {line} AS line, {x} AS x, "  # noqa: S608
        f"{aggs} FROM {OK} WHERE {known} IS NOT NULL GROUP BY {group}) {rows}"
    ).df()


def aggregate(
    con: duckdb.DuckDBPyConnection, budget: int = POINT_BUDGET
) -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """Per (model, scenario, metric, line, x): n, runs, median, q1, q3 across runs (line: the
    stack) and across releases (line: torch); and the time bucket the runs took, if any."""
    shown = _load(con)
    if not shown:
        raise store.StoreError("no ok record with a metric in the store")
    bucket = pick_bucket(con, len(shown), budget)
    if bucket is None:
        x, by = "min(run_time)", "run_id"
    else:
        x = by = f"time_bucket(INTERVAL '{bucket}', run_time)"
    runs = _spreads(con, shown, "stack_id", x, f"model, scenario, stack_id, {by}", "run_time")
    group = "model, scenario, torch_version, transformers_version"
    tf = "transformers_version"
    releases = _spreads(con, shown, "torch_version", tf, group, tf)
    return runs, releases, bucket


def _codes(values: pd.Series[Any], order: Sequence[str]) -> np.ndarray[Any, Any]:
    rank = {v: i for i, v in enumerate(order)}
    return np.array([rank[v] for v in values.astype(str)], dtype=np.int64)


def _round(df: pd.DataFrame) -> pd.DataFrame:
    """Each metric to one decimal more than it is shown with: a smaller page, same chart."""
    df = df.copy()
    for name, rows in df.groupby("metric").groups.items():
        digits = metrics.METRICS[str(name)].digits + 1
        df.loc[rows, ["median", "q1", "q3"]] = df.loc[rows, ["median", "q1", "q3"]].round(digits)
    return df


def encode(
    df: pd.DataFrame, names: dict[str, list[str]], lines: Sequence[str], xs: Sequence[str]
) -> dict[str, list[list[Any]]]:
    """{"model,scenario,metric" codes: [[line, [x], [median], [q1], [q3], [n], [runs]], ...]}."""
    if df.empty:
        return {}
    df = _round(df)
    code = {c: _codes(df[c], names[c]) for c in ("model", "scenario", "metric")}
    line, x = _codes(df["line"], lines), _codes(df["x"], xs)
    order = np.lexsort((x, line, code["metric"], code["scenario"], code["model"]))
    key = np.stack([code["model"], code["scenario"], code["metric"], line])[:, order]
    cuts = np.flatnonzero((np.diff(key, axis=1) != 0).any(axis=0)) + 1
    starts, ends = np.concatenate(([0], cuts)), np.concatenate((cuts, [len(order)]))
    cols = [x, df["median"], df["q1"], df["q3"], df["n"], df["runs"]]
    values = [np.asarray(c)[order].tolist() for c in cols]
    out: dict[str, list[list[Any]]] = {}
    for a, b in zip(starts.tolist(), ends.tolist(), strict=True):
        m, s, k, li = key[:, a].tolist()
        out.setdefault(f"{m},{s},{k}", []).append([li, *(v[a:b] for v in values)])
    return out


def page_data(
    runs: pd.DataFrame, releases: pd.DataFrame, bucket: str | None, marks: Iterable[Mark] = ()
) -> dict[str, Any]:
    """What the loader draws from: names once, then codes and aggregated numbers."""
    marks = list(marks)
    both = [runs, releases]
    names = {
        c: sorted({str(v) for df in both for v in df[c]}) for c in ("model", "scenario", "metric")
    }
    names["metric"] = [m for m in SHOWN if m in names["metric"]]
    stacks = sorted({str(v) for v in runs["line"]}, key=ids.stack_order_key)
    torches = sorted({str(v) for v in releases["line"]}, key=ids.version_key)
    shown = {str(v) for v in releases["x"]} | {m[3] for m in marks}
    versions = sorted(shown, key=ids.version_key)
    runs = runs.assign(x=runs["x"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    times = sorted({str(v) for v in runs["x"]})
    index = {c: {v: i for i, v in enumerate(names[c])} for c in names}
    placed: dict[str, list[list[str]]] = {}
    for model, scenario, metric, release, label in marks:
        try:
            key = f"{index['model'][model]},{index['scenario'][scenario]},{index['metric'][metric]}"
        except KeyError:  # a mark for a cell the store has no history of
            continue
        placed.setdefault(key, []).append([release, label])
    return {
        "models": names["model"],
        "scenarios": names["scenario"],
        "metrics": [
            [m, metrics.METRICS[m].label, metrics.METRICS[m].unit] for m in names["metric"]
        ],
        "stacks": stacks,
        "torches": torches,
        "times": times,
        "releases": versions,
        "bucket": bucket or "run",
        "run": encode(runs, names, stacks, times),
        "release": encode(releases, names, torches, versions),
        "marks": placed,
    }


def render(data: dict[str, Any], counts: tuple[int, int]) -> str:
    records, runs = counts
    text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    grouped = (
        "each run is one point"
        if data["bucket"] == "run"
        else f"runs are grouped by {data['bucket']} (too many runs for one point each)"
    )
    picks = "".join(
        f'<label>{e(label)} <select id="pick-{key}"></select></label> '
        for key, label in (("model", "Model"), ("scenario", "Scenario"), ("metric", "Metric"))
    )
    body = (
        f"<h1>History</h1><p>{records} records from {runs} runs: "
        f"{len(data['models'])} models, {len(data['stacks'])} stacks, "
        f"{len(data['releases'])} transformers releases. Medians over the ok repeats, "
        f"quartiles as error bars; {e(grouped)}.</p><p>{picks}</p>"
        "<section><h2>Across runs</h2><p>x: when the run started; one line per stack.</p>"
        '<div class="chart" id="chart-run" data-chart="run"></div></section>'
        "<section><h2>Across releases</h2><p>x: the transformers release, in version order; "
        "one line per torch version; every run pooled. Dotted lines mark steps.</p>"
        '<div class="chart" id="chart-release" data-chart="release"></div></section>'
        f'<script type="application/json" id="history">{script_json(text)}</script>'
        f"<script>{LOADER}</script>"
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{dashboard.csp(LOADER)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>History</title><style>{dashboard.STYLE}</style>"
        f'<script src="{dashboard.PLOTLY_JS}"></script></head>\n<body>\n{body}\n</body></html>\n'
    )


def build_history(root: Path, out: Path, marks: Iterable[Mark] = ()) -> Path:
    """Write out/history.html (and plotly.min.js beside it) from the store at `root`."""
    con = store.connect(root)
    try:
        runs, releases, bucket = aggregate(con)
        row = con.execute(f"SELECT count(*), count(DISTINCT run_id) FROM {store.VIEW}").fetchone()  # noqa: S608
    finally:
        con.close()
    counts = (int(row[0]), int(row[1])) if row else (0, 0)
    out.mkdir(parents=True, exist_ok=True)
    dashboard.copy_plotly(out)
    page = out / PAGE
    page.write_text(render(page_data(runs, releases, bucket, marks), counts), encoding="utf-8")
    return page
