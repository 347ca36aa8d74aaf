"""Progress: plain lines when not on a terminal, a rich bar on one."""

from __future__ import annotations

import io
import sys
from typing import TYPE_CHECKING, cast

from harness.config.matrix import Cell, Model, Scenario, Stack
from harness.measure import progress

if TYPE_CHECKING:
    import pytest

    from harness.records import Record

STACK = Stack(id="s1", python="3.11", transformers="4.46.3", torch="2.5.1", accelerate=None,
              pins=(), find_links=(), index_url=None, torch_backend=None)  # fmt: skip
CELL = Cell(STACK, Model("tiny-gpt2", "embedded", "tiny-gpt2", ("x",), None, False),
            Scenario(None, None, "float32", "safetensors", 5))  # fmt: skip


def _record(status: str = "ok") -> Record:
    # Only the fields a progress line shows.
    return cast("Record", {"status": status, "wall_s": 1.25, "peak_mb": 12.5, "golden": "match"})


def test_plain_lines_off_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    with progress.reporter("s1") as report:
        report(0, 2, CELL, 0, None)  # a start: nothing printed off a terminal
        report(1, 2, CELL, 0, _record())
    out = capsys.readouterr().out
    assert (
        out
        == "[   1/2] s1 tiny-gpt2/st/fp32/lcmu=omit/dm=none #0 ok (1.2 s) peak 12 MiB golden match\n"
    )


def test_rich_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    buffer = io.StringIO()
    monkeypatch.setattr(buffer, "isatty", lambda: True, raising=False)
    monkeypatch.setattr(sys, "stdout", buffer)
    with progress.reporter("s1") as report:
        report(0, 2, CELL, 0, None)
        report(1, 2, CELL, 0, _record())
        report(1, 2, CELL, 1, None)
        report(2, 2, CELL, 1, _record("timeout"))
    out = buffer.getvalue()
    assert "2/2" in out
    assert "eta" in out
    # Failures are printed above the bar so they stay visible.
    assert "#1 timeout" in out
