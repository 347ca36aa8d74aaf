"""Figures checked through fig.to_dict(): the right series, values, labels and escaping."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from recordkit import DEFAULT, HANDMADE, make_record
from scipy import stats

from harness import records as rec
from harness.report import plots, tables

if TYPE_CHECKING:
    from pathlib import Path

    import pandas as pd

A = "tf4.46.3-torch2.5.1-py3.11"
B = "tf5.5.4-torch2.5.1-py3.11"
C = "tf5.24.0-torch2.13.0-py3.11"
XSS = "<img src=x onerror=alert(1)>"


def _handmade() -> tuple[pd.DataFrame, list[str], list[str]]:
    df = tables.to_frame(rec.read_run(HANDMADE))
    return df, tables.stack_order(df), tables.model_order(df)


def _traces(fig: Any) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = fig.to_dict()["data"]
    return data


def test_memory_bars_split_anon_and_file_with_the_peak_on_top() -> None:
    df, stacks, models = _handmade()
    traces = _traces(plots.memory_by_stack(df, stacks, models))
    assert [(t["type"], t["name"]) for t in traces] == [
        ("bar", "anonymous"), ("bar", "file-backed"), ("scatter", "peak (HWM)"),
    ]  # fmt: skip
    anon, file, peak = traces
    # device_map=none only; medians over the ok repeats, stacks in version order.
    assert anon["y"] == [["lcmu=omit · float32"] * 2, [A, B]]
    assert anon["x"] == [5.5, 0.5]
    assert file["x"] == [15.5, 17.0]
    assert peak["x"] == [21.0, 17.5]
    assert anon["orientation"] == "h"
    assert fig_layout(plots.memory_by_stack(df, stacks, models))["barmode"] == "relative"


def fig_layout(fig: Any) -> dict[str, Any]:
    layout: dict[str, Any] = fig.to_dict()["layout"]
    return layout


def test_peak_ratio_has_a_box_per_model_and_the_floor_at_one() -> None:
    df, stacks, models = _handmade()
    fig = plots.peak_ratio_by_stack(df, stacks, models)
    (box,) = _traces(fig)
    assert (box["type"], box["name"]) == ("box", "tiny-gpt2")
    # Quartiles and min/max per stack over its ok runs, not the raw points.
    assert box["x"] == [A, B]
    assert box["median"] == pytest.approx([10.8881, 9.3327])
    assert box["lowerfence"] == [10.3696, 9.0734]
    assert box["upperfence"] == [11.4066, 9.5919]
    assert box["q1"] == pytest.approx([10.62885, 9.20305])
    assert box["text"] == ["2 runs", "3 runs"]
    layout = fig_layout(fig)
    (line,) = layout["shapes"]
    assert (line["y0"], line["y1"]) == (1.0, 1.0)
    assert layout["yaxis"]["type"] == "log"
    assert layout["xaxis"]["categoryarray"] == stacks


def test_speed_shows_load_time_and_decode_rate_side_by_side() -> None:
    df, stacks, models = _handmade()
    load, decode = _traces(plots.speed_by_stack(df, stacks, models))
    assert (load["xaxis"], decode["xaxis"]) == ("x", "x2")
    assert load["median"] == pytest.approx([0.12, 0.04])
    assert decode["median"] == [110.0, 1100.0]
    assert (decode["lowerfence"], decode["upperfence"]) == ([100.0, 1000.0], [120.0, 1200.0])
    assert decode["showlegend"] is False


def test_memory_against_size_fits_mib_per_million_parameters() -> None:
    # peak = 100 MiB + 4 MiB per million parameters, on three sizes.
    records = [make_record(model=f"m{n}", params=n * 1_000_000, peak=100.0 + 4.0 * n)
               for n in (100, 200, 400)]  # fmt: skip
    df = tables.to_frame(records)
    fit = plots.size_fits(df)[("aaaaaaaaaaaa", A)]
    assert fit.mib_per_m_params == pytest.approx(4.0)
    assert fit.intercept_mb == pytest.approx(100.0)
    assert fit.r2 == pytest.approx(1.0)
    points, line, weights = _traces(plots.memory_vs_size(df, [A]))
    assert points["x"] == [100.0, 200.0, 400.0]
    assert points["y"] == [500.0, 900.0, 1700.0]
    assert line["name"] == f"{A}: 4.00 MiB/M params"
    assert line["y"] == pytest.approx([500.0, 1700.0])
    assert weights["name"] == "weights alone: 3.81 MiB/M params"
    table = plots.size_slopes(df)
    assert list(table["mib_per_m_params"]) == pytest.approx([4.0])


def test_size_fits_agree_with_scipy_linregress() -> None:
    sizes = {"a": (124, 640.0), "b": (355, 1500.0), "c": (774, 2990.0), "d": (1558, 6400.0)}
    records = [make_record(model=m, params=n * 1_000_000, peak=peak)
               for m, (n, peak) in sizes.items()]  # fmt: skip
    fit = plots.size_fits(tables.to_frame(records))[("aaaaaaaaaaaa", A)]
    ref = stats.linregress([n for n, _ in sizes.values()], [p for _, p in sizes.values()])
    assert fit.mib_per_m_params == pytest.approx(ref.slope)
    assert fit.intercept_mb == pytest.approx(ref.intercept)
    assert fit.r2 == pytest.approx(ref.rvalue**2)
    assert fit.models == 4


def test_one_model_size_draws_points_and_says_why_there_is_no_slope() -> None:
    df, stacks, _ = _handmade()
    fig = plots.memory_vs_size(df, stacks)
    assert plots.size_fits(df) == {}
    assert [t["mode"] for t in _traces(fig)] == ["markers", "markers", "lines"]
    (note,) = fig_layout(fig)["annotations"]
    assert note["text"] == "one model size only: no slope to fit"


def test_reference_scenario_prefers_the_default_load() -> None:
    df = tables.to_frame([make_record(lcmu=True, fmt="bin"), make_record(lcmu=True, fmt="bin")])
    assert plots.reference_scenario(df) == {
        "low_cpu_mem_usage": "true", "device_map": "none", "dtype": "float32",
        "checkpoint_format": "bin",
    }  # fmt: skip


def test_every_figure_of_a_real_run_has_series() -> None:
    df = tables.to_frame(rec.read_run(DEFAULT))
    figures = plots.all_figures(df, tables.stack_order(df), tables.model_order(df))
    assert list(figures) == ["memory", "peak_ratio", "speed", "compatibility", "memory_vs_size"]
    for name, fig in figures.items():
        assert _traces(fig), name
    fits = plots.size_fits(df)
    assert fits
    # Float32 weights alone need 3.81 MiB per million parameters; no stack does better.
    assert all(f.mib_per_m_params > 3.81 for f in fits.values())


def test_no_ok_record_still_makes_figures() -> None:
    df = tables.to_frame([make_record(status="error", message="boom")])
    figures = plots.all_figures(df, tables.stack_order(df), tables.model_order(df))
    assert fig_layout(figures["memory"])["annotations"][0]["text"] == "no ok runs to measure"
    assert _traces(figures["compatibility"])


def test_an_empty_frame_still_makes_figures() -> None:
    df = tables.to_frame([])
    for name, fig in plots.all_figures(df, [], []).items():
        assert fig.to_dict()["layout"]["annotations"], name


def test_png_export_degrades_without_an_exporter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plots, "has_image_exporter", lambda: False)
    df, stacks, models = _handmade()
    written, note = plots.export_pngs(plots.all_figures(df, stacks, models), tmp_path / "png")
    assert written == ()
    assert note == "PNG export skipped: no image exporter installed (pip install kaleido)"
    assert not (tmp_path / "png").exists()


def test_charts_keep_machines_apart() -> None:
    records = [make_record(peak=500.0), make_record(fingerprint="bbbbbbbbbbbb", peak=900.0)]
    df = tables.to_frame(records)
    figures = plots.all_figures(df, [A], ["gpt2-124m"])
    labels = [f"{A} @ aaaaaaaaaaaa", f"{A} @ bbbbbbbbbbbb"]
    (heat,) = _traces(figures["compatibility"])
    assert heat["y"] == labels
    _, _, peak = _traces(figures["memory"])
    assert peak["y"][1] == labels
    assert peak["x"] == [500.0, 900.0]
    (box,) = _traces(figures["peak_ratio"])
    assert box["x"] == labels


def test_xss_in_a_stack_or_model_name_is_escaped_everywhere() -> None:
    df = tables.to_frame([make_record(stack=XSS, model=XSS, tf="4.46.3")])
    figures = plots.all_figures(df, [XSS], [XSS])
    for name, fig in figures.items():
        assert "<img" not in fig.to_json(), name
