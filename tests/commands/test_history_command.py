"""`harness history`: merge runs in, print one cell's series, write the page; one-line errors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from recordkit import DEFAULT, SMOKE

from harness.commands import main
from harness.report import store

if TYPE_CHECKING:
    from pathlib import Path

CELL = ["gpt2-124m", "st/fp32/lcmu=omit/dm=none", "peak_mb"]


@pytest.fixture
def root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    path = tmp_path / "store"
    assert main(["history", "--add", str(SMOKE), str(DEFAULT), "--store", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"store: 8 records of {SMOKE}" in out
    assert f"store: 120 records of {DEFAULT}" in out
    return path


def test_history_prints_the_cells_medians(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["history", *CELL, "--store", str(root)]) == 0
    out = capsys.readouterr().out
    for row in store.series(root, CELL[0], CELL[1], CELL[2]).itertuples():
        assert f"{row.median:.1f}" in out
        assert str(row.line) in out
    assert "peak memory (MiB) of gpt2-124m" in out


def test_history_by_release_in_version_order(
    root: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", *CELL, "--by", "release", "--store", str(root)]) == 0
    out = capsys.readouterr().out
    positions = [out.index(v) for v in ("4.46.3", "4.57.6", "5.5.4", "5.24.0")]
    assert positions == sorted(positions)


def test_harness_store_names_the_default_store(
    root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HARNESS_STORE", str(root))
    assert main(["history", *CELL, "--html", str(tmp_path / "site")]) == 0
    assert (tmp_path / "site" / "history.html").is_file()
    assert "history: " in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["gpt2-124", *CELL[1:]], "unknown model 'gpt2-124'; known: gpt2-124m"),
        ([CELL[0], "st/fp32", CELL[2]], "unknown scenario 'st/fp32' of gpt2-124m; known"),
        ([*CELL[:2], "peak"], "unknown metric 'peak'"),
        (CELL[:2], "expected MODEL SCENARIO METRIC, all three"),
        ([], "expected MODEL SCENARIO METRIC, --add RUN_DIR or --html DIR"),
        ([*CELL, "--by", "week"], "invalid choice: 'week'"),
    ],
)
def test_mistakes_are_one_line_and_exit_2(
    root: Path, argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", *argv, "--store", str(root)]) == 2
    err = capsys.readouterr().err
    assert fragment in err
    assert err.count("\n") == 1


def test_an_empty_store_or_a_missing_run_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["history", *CELL, "--store", str(tmp_path / "none")]) == 2
    assert "the results store is empty" in capsys.readouterr().err
    assert main(["history", "--add", str(tmp_path / "nope"), "--store", str(tmp_path)]) == 2
    assert "no run folder there" in capsys.readouterr().err
