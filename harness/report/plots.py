"""Plotly figures of the tidy frame, as pure functions. Record strings in hover text are
HTML-escaped: plotly renders some HTML in labels and decodes entities, so they show as typed."""

from __future__ import annotations

import html
import importlib.util
import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from harness import metrics
from harness.report.heatmap import compatibility_heatmap, empty
from harness.report.tables import per_machine, sort_stacks, stack_order

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

# Preferred value per axis for the one-scenario charts: the plain default load.
REFERENCE = {"low_cpu_mem_usage": "omit", "device_map": "none", "dtype": "float32",
             "checkpoint_format": "safetensors"}  # fmt: skip
BYTES_PER_PARAM = {"float32": 4, "bfloat16": 2, "float16": 2}
ROW_PX = 320


def _clean(values: Sequence[Any]) -> list[Any]:
    """Plain lists with None for NaN: to_dict stays readable and JSON has no NaN."""
    return [None if isinstance(v, float) and math.isnan(v) else v for v in values]


def _ok(df: pd.DataFrame) -> pd.DataFrame:
    return df.loc[df["status"] == "ok"]


def _colours(names: Sequence[str]) -> dict[str, str]:
    palette = qualitative.Plotly + qualitative.D3
    return {n: palette[i % len(palette)] for i, n in enumerate(names)}


def memory_by_stack(df: pd.DataFrame, stacks: Sequence[str], models: Sequence[str]) -> go.Figure:
    """RSS after generate split into anonymous and file-backed (stacked), peak as a marker."""
    df, stacks = per_machine(df, stacks)
    ok = _ok(df)
    dms = set(ok["device_map"])
    if "none" in dms:
        ok = ok.loc[ok["device_map"] == "none"]
    formats = sorted(ok["checkpoint_format"].unique())
    used = [m for m in models if m in set(ok["model"])]
    if not used:
        return empty(go.Figure(), "no ok runs to measure")
    keys = ["model", "checkpoint_format", "low_cpu_mem_usage", "dtype", "stack_id"]
    med = ok.groupby(keys)[["anon_mb", "file_mb", "peak_mb"]].median().reset_index()
    med = sort_stacks(med, stacks, keys)
    panels = [(m, f) for m in used for f in formats
              if ((med["model"] == m) & (med["checkpoint_format"] == f)).any()]  # fmt: skip
    bars = [int(((med["model"] == m) & (med["checkpoint_format"] == f)).sum()) for m, f in panels]
    # One column: the long stack ids need the width, one panel per model and format.
    fig = make_subplots(
        rows=len(panels), cols=1, row_heights=bars, vertical_spacing=0.3 / len(panels),
        subplot_titles=[html.escape(f"{m} · {f}") for m, f in panels],
    )  # fmt: skip
    for r, (model, fmt) in enumerate(panels, start=1):
        part = med.loc[(med["model"] == model) & (med["checkpoint_format"] == fmt)]
        arms = zip(part["low_cpu_mem_usage"], part["dtype"], strict=True)
        y = [[f"lcmu={lc} · {dt}" for lc, dt in arms], [html.escape(s) for s in part["stack_id"]]]
        for name, col, colour in (("anonymous", "anon_mb", "#4c78a8"),
                                  ("file-backed", "file_mb", "#f58518")):  # fmt: skip
            fig.add_trace(go.Bar(name=name, y=y, x=_clean(list(part[col])), orientation="h",
                                 marker_color=colour, legendgroup=name, showlegend=r == 1),
                          row=r, col=1)  # fmt: skip
        fig.add_trace(go.Scatter(name="peak (HWM)", y=y, x=_clean(list(part["peak_mb"])),
                                 mode="markers", marker={"symbol": "diamond", "size": 9,
                                                         "color": "#222"},
                                 legendgroup="peak", showlegend=r == 1),
                      row=r, col=1)  # fmt: skip
        fig.update_xaxes(title_text="MiB", row=r, col=1)
        fig.update_yaxes(autorange="reversed", row=r, col=1)
    title = "Memory per stack after generate (MiB above pre-load RSS)"
    if "none" in dms:
        title += ", device_map=none"
    fig.update_layout(
        title=title, barmode="relative", height=22 * sum(bars) + 100 * len(panels) + 80
    )
    return fig


def _boxes(fig: go.Figure, ok: pd.DataFrame, metric: str, stacks: Sequence[str],
           models: Sequence[str], *, col: int | None = None,
           legend: bool = True) -> None:  # fmt: skip
    """Boxes from precomputed quartiles and min/max: 10,000 raw points would weigh the page."""
    colours = _colours(models)
    values = ok.dropna(subset=[metric]).groupby(["model", "stack_id"])[metric]
    stats = pd.DataFrame({"q1": values.quantile(0.25), "median": values.median(),
                          "q3": values.quantile(0.75), "min": values.min(), "max": values.max(),
                          "n": values.size()})  # fmt: skip
    for model in models:
        if model not in stats.index.get_level_values(0):
            continue
        found = stats.loc[model]
        part = found.reindex([s for s in stacks if s in found.index])
        trace = go.Box(name=html.escape(model), x=[html.escape(str(s)) for s in part.index],
                       q1=list(part["q1"]), median=list(part["median"]), q3=list(part["q3"]),
                       lowerfence=list(part["min"]), upperfence=list(part["max"]),
                       marker_color=colours[model], legendgroup=model, showlegend=legend,
                       text=[f"{n} runs" for n in part["n"]])  # fmt: skip
        fig.add_trace(trace, row=None if col is None else 1, col=col)


def peak_ratio_by_stack(
    df: pd.DataFrame, stacks: Sequence[str], models: Sequence[str]
) -> go.Figure:
    """Peak RSS over the weights' size per stack and model; 1.0 is the physical floor."""
    df, stacks = per_machine(df, stacks)
    ok = _ok(df)
    fig = go.Figure()
    _boxes(fig, ok, "peak_ratio", stacks, models)
    fig.add_hline(y=1.0, line_dash="dash", line_color="#d62728")
    # On a log axis an annotation's y is log10 of the value: 0 sits on the 1.0 line.
    fig.add_annotation(text="1.0 = the weights themselves", xref="paper", x=1, y=0,
                       xanchor="right", yanchor="bottom", showarrow=False)  # fmt: skip
    fig.update_layout(title="Peak RAM over the weights' size (all scenarios and repeats)",
                      boxmode="group", yaxis_type="log", yaxis_title="peak / weights",
                      height=ROW_PX + 120)  # fmt: skip
    fig.update_xaxes(categoryorder="array", categoryarray=list(stacks))
    return fig if not ok.empty else empty(fig, "no ok runs to measure")


def speed_by_stack(df: pd.DataFrame, stacks: Sequence[str], models: Sequence[str]) -> go.Figure:
    """from_pretrained seconds and decode tokens per second, per stack and model."""
    df, stacks = per_machine(df, stacks)
    ok = _ok(df)
    fig = make_subplots(rows=1, cols=2, subplot_titles=["load (s)", "decode (tokens/s)"])
    _boxes(fig, ok, "load_s", stacks, models, col=1)
    _boxes(fig, ok, "tokens_per_s", stacks, models, col=2, legend=False)
    fig.update_layout(title="Load time and decode speed (all scenarios and repeats)",
                      boxmode="group", height=ROW_PX + 120)  # fmt: skip
    fig.update_xaxes(categoryorder="array", categoryarray=list(stacks))
    # Model sizes differ by orders of magnitude: a log axis keeps every box readable.
    fig.update_yaxes(type="log")
    return fig if not ok.empty else empty(fig, "no ok runs to measure")


def reference_scenario(df: pd.DataFrame) -> dict[str, str]:
    """The plain default load where the run has it, else the most common value per axis."""
    ok = _ok(df) if not _ok(df).empty else df
    return {
        axis: pref if pref in set(ok[axis]) or ok.empty else str(ok[axis].mode().iloc[0])
        for axis, pref in REFERENCE.items()
    }


def _reference_rows(df: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    ref = reference_scenario(df)
    ok = _ok(df)
    mask = (ok[list(ref)] == pd.Series(ref)).all(axis=1)
    return ok.loc[mask].dropna(subset=["params", "peak_mb"]), ref


@dataclass(frozen=True)
class Fit:
    models: int
    mib_per_m_params: float
    intercept_mb: float
    r2: float


def _size_points(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.groupby(["machine_fingerprint", "stack_id", "model"]).agg(
        params=("params", "max"), peak_mb=("peak_mb", "median")
    )


def size_fits(df: pd.DataFrame) -> dict[tuple[str, str], Fit]:
    """Per (machine, stack): least-squares MiB of peak per million parameters, from per-group
    sums: linregress's numbers without a Python call per stack (hundreds at 10,000 records)."""
    points = _size_points(_reference_rows(df)[0]).reset_index()
    x = points["params"].astype("float64") / 1e6
    y = points["peak_mb"].astype("float64")
    sums = pd.DataFrame(
        {"n": 1.0, "x": x, "y": y, "xx": x * x, "xy": x * y, "yy": y * y,
         "machine_fingerprint": points["machine_fingerprint"], "stack_id": points["stack_id"]}
    ).groupby(["machine_fingerprint", "stack_id"]).sum()  # fmt: skip
    sxx = sums["n"] * sums["xx"] - sums["x"] ** 2
    sxy = sums["n"] * sums["xy"] - sums["x"] * sums["y"]
    syy = sums["n"] * sums["yy"] - sums["y"] ** 2
    fits = {}
    # A tolerance, not zero: equal sizes leave rounding residue in n*sum(x^2) - sum(x)^2.
    for key, n, a, b, c, sx, sy in zip(sums.index, sums["n"], sxx, sxy, syy, sums["x"],
                                       sums["y"], strict=True):  # fmt: skip
        if n < 2 or a <= 1e-9 * max(sx * sx, 1.0):
            continue
        slope = b / a
        r2 = b * b / (a * c) if c > 0 else 1.0
        fits[str(key[0]), str(key[1])] = Fit(int(n), slope, (sy - slope * sx) / n, r2)
    return fits


def size_slopes(df: pd.DataFrame) -> pd.DataFrame:
    """size_fits as a table, for the dashboard and summary readers."""
    rows = [{"machine_fingerprint": fp, "stack_id": stack, **asdict(fit)}
            for (fp, stack), fit in size_fits(df).items()]  # fmt: skip
    table = pd.DataFrame(rows, columns=["machine_fingerprint", "stack_id", *Fit.__annotations__])
    order = stack_order(df)
    return sort_stacks(table, order, ["stack_id", "machine_fingerprint"]).reset_index(drop=True)


def memory_vs_size(df: pd.DataFrame, stacks: Sequence[str]) -> go.Figure:
    """Peak memory against parameter count, one fitted line per stack, weights as reference."""
    df, stacks = per_machine(df, stacks)
    rows, ref = _reference_rows(df)
    fig = go.Figure()
    scenario = ", ".join(f"{k}={v}" for k, v in ref.items())
    fig.update_layout(title=html.escape(f"Peak memory against model size ({scenario})"),
                      xaxis_title="parameters (millions)", yaxis_title="peak MiB above pre-load",
                      height=ROW_PX + 160)  # fmt: skip
    if rows.empty:
        return empty(fig, "no ok runs with a parameter count")
    colours = _colours(stacks)
    points = _size_points(rows)
    fits = size_fits(df)
    rank = {s: i for i, s in enumerate(stacks)}
    groups = sorted(points.groupby(level=[0, 1]), key=lambda g: (rank.get(str(g[0][1]), -1), g[0]))
    for (fp, stack), group in groups:
        part = group.sort_values("params")
        x = list(part["params"].astype("float64") / 1e6)
        label = str(stack)
        fig.add_trace(go.Scatter(name=html.escape(label), x=x, y=_clean(list(part["peak_mb"])),
                                 mode="markers", marker_color=colours.get(str(stack)),
                                 legendgroup=label,
                                 text=[html.escape(str(m)) for m in part.index.get_level_values(2)],
                                 hovertemplate="%{text}: %{y:.0f} MiB<extra></extra>"))  # fmt: skip
        fit = fits.get((str(fp), str(stack)))
        if fit is not None:
            ends = [min(x), max(x)]
            fig.add_trace(go.Scatter(
                name=html.escape(f"{label}: {fit.mib_per_m_params:.2f} MiB/M params"),
                x=ends, y=[fit.intercept_mb + fit.mib_per_m_params * e for e in ends],
                mode="lines", line={"color": colours.get(str(stack))}, legendgroup=label,
            ))  # fmt: skip
    per_m = BYTES_PER_PARAM.get(ref["dtype"])
    if per_m:
        slope = per_m * 1e6 / metrics.MIB
        top = float(rows["params"].max()) / 1e6
        fig.add_trace(go.Scatter(name=f"weights alone: {slope:.2f} MiB/M params",
                                 x=[0, top], y=[0, slope * top], mode="lines",
                                 line={"dash": "dot", "color": "#888"}))  # fmt: skip
    if not fits:
        fig = empty(fig, "one model size only: no slope to fit")
    return fig


def all_figures(
    df: pd.DataFrame, stacks: Sequence[str], models: Sequence[str]
) -> dict[str, go.Figure]:
    return {
        "memory": memory_by_stack(df, stacks, models),
        "peak_ratio": peak_ratio_by_stack(df, stacks, models),
        "speed": speed_by_stack(df, stacks, models),
        "compatibility": compatibility_heatmap(df, stacks, models),
        "memory_vs_size": memory_vs_size(df, stacks),
    }


def has_image_exporter() -> bool:
    return importlib.util.find_spec("kaleido") is not None


def export_pngs(figures: dict[str, go.Figure], out: Path) -> tuple[tuple[Path, ...], str | None]:
    """Each figure as PNG through kaleido; without it, no files and one line saying why."""
    if not has_image_exporter():
        return (), "PNG export skipped: no image exporter installed (pip install kaleido)"
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, fig in figures.items():
        path = out / f"{name}.png"
        try:
            fig.write_image(path, width=1200, height=fig.layout.height or 600)
        except Exception as exc:  # kaleido fails in many ways (no Chrome, sandbox)
            first = (str(exc).strip().splitlines() or [""])[0]
            return tuple(written), f"PNG export failed: {type(exc).__name__}: {first[:200]}"
        written.append(path)
    return tuple(written), None
