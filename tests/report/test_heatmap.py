"""The compatibility heatmap through fig.to_dict(): states, labels and escaped hover text."""

from __future__ import annotations

from typing import Any

from recordkit import HANDMADE, make_record

from harness import records
from harness.report import heatmap, tables

A = "tf4.46.3-torch2.5.1-py3.11"
B = "tf5.5.4-torch2.5.1-py3.11"


def _handmade() -> tuple[Any, list[str], list[str]]:
    df = tables.to_frame(records.read_run(HANDMADE))
    return df, tables.stack_order(df), tables.model_order(df)


def _traces(fig: Any) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = fig.to_dict()["data"]
    return data


def fig_layout(fig: Any) -> dict[str, Any]:
    layout: dict[str, Any] = fig.to_dict()["layout"]
    return layout


def test_heatmap_colours_status_and_golden_and_escapes_messages() -> None:
    df, stacks, models = _handmade()
    fig = heatmap.compatibility_heatmap(df, stacks, models)
    (heat,) = _traces(fig)
    assert heat["y"] == stacks
    assert heat["x"] == ["st/fp32/lcmu=omit/dm=none", "st/fp32/lcmu=false/dm=cpu"]
    bar = fig_layout(fig)["coloraxis"]["colorbar"]
    labels = bar["ticktext"]
    assert labels == ["ok · golden match", "ok", "unsupported", "error", "install_error"]
    state = [[labels[v] for v in row] for row in heat["z"]]
    assert state == [
        ["ok · golden match", "unsupported"],
        ["error", "ok"],
        ["install_error", "install_error"],
    ]
    hover = heat["text"][1][0]
    assert "&lt;img src=x onerror=alert(1)&gt;" in hover
    assert "<img" not in hover
    assert "golden: drift" in hover
    assert "&#x27;Hi&#x27;: drift at new token 3" in hover


def test_heatmap_marks_cells_that_did_not_run() -> None:
    df = tables.to_frame([make_record(stack=A), make_record(stack=B, lcmu=True)])
    fig = heatmap.compatibility_heatmap(df, [A, B], ["gpt2-124m"])
    (heat,) = _traces(fig)
    assert heat["z"] == [[0, None], [None, 0]]
    assert heat["text"][0][1].endswith("not run")


def test_a_state_joins_status_and_golden_verdict() -> None:
    assert heatmap.state_of("ok", "drift") == "ok · golden drift"
    assert heatmap.state_of("ok", None) == "ok"
    assert heatmap.state_of("ok", "from-the-future") == "ok"
    assert heatmap.state_of("timeout", None) == "timeout"
    assert heatmap.state_of("new-status", None) == "error"
