"""history.html: aggregated numbers only, escaped names, marks; and a real headless Chromium look."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import pytest
from pagekit import open_page
from recordkit import DEFAULT, SMOKE, make_record, write_run

from harness.report import history, store

if TYPE_CHECKING:
    from pathlib import Path

XSS = '"><img src=x onerror=alert(1)>'
CELL = ("gpt2-124m", "st/fp32/lcmu=omit/dm=none", "peak_mb")
MARK = (*CELL, "4.57.6", "peak steps down")


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    store.merge([SMOKE, DEFAULT], path)
    return path


def _data(page: Path) -> dict[str, Any]:
    text = page.read_text(encoding="utf-8")
    found = re.search(
        r'<script type="application/json" id="history">(.*?)</script>', text, re.DOTALL
    )
    assert found
    data: dict[str, Any] = json.loads(found.group(1))
    return data


def _series(
    data: dict[str, Any], view: str, cell: tuple[str, str, str]
) -> dict[tuple[str, str], tuple[float, float, float, int]]:
    model, scenario, metric = cell
    key = (f"{data['models'].index(model)},{data['scenarios'].index(scenario)},"
           f"{[m[0] for m in data['metrics']].index(metric)}")  # fmt: skip
    lines, xs = ("stacks", "times") if view == "run" else ("torches", "releases")
    return {
        (data[lines][s[0]], data[xs][x]): (med, q1, q3, n)
        for s in data[view][key]
        for x, med, q1, q3, n in zip(*s[1:6], strict=True)
    }


def test_the_page_carries_the_stores_medians_not_its_records(root: Path, tmp_path: Path) -> None:
    page = history.build_history(root, tmp_path / "site", marks=[MARK])
    assert (tmp_path / "site" / "plotly.min.js").is_file()
    data = _data(page)
    assert data["bucket"] == "run"
    assert data["releases"] == ["4.46.3", "4.57.6", "5.5.4", "5.24.0"]
    drawn = _series(data, "release", CELL)
    for row in store.series(root, *CELL, by="release").itertuples():
        med, q1, q3, n = drawn[str(row.line), str(row.x)]
        assert (med, q1, q3, n) == pytest.approx((row.median, row.q1, row.q3, row.n), abs=0.01)
    by_run = _series(data, "run", CELL)
    assert sum(v[3] for v in by_run.values()) == store.series(root, *CELL)["n"].sum()
    text = page.read_text(encoding="utf-8")
    # No record travels: neither outputs nor messages nor tracebacks.
    for field in ("output_text", "traceback", "Traceback", "The quick brown fox"):
        assert field not in text


def test_runs_count_only_those_with_a_value_of_the_metric(tmp_path: Path) -> None:
    """An older run without ttft_s pools into the release, not into ttft_s's run count."""
    old = write_run(tmp_path / "a", [make_record(run_id="20260101-000000", ttft_s=None)])
    new = write_run(tmp_path / "b", [make_record(run_id="20260102-000000")])
    root = tmp_path / "store"
    store.merge([old, new], root)
    con = store.connect(root)
    try:
        runs, releases, _ = history.aggregate(con, budget=1)  # bucketed: both runs in one
    finally:
        con.close()
    for df in (runs, releases):
        counts = {m: (n, r) for m, n, r in df[["metric", "n", "runs"]].itertuples(index=False)}
        assert counts["ttft_s"] == (1, 1)
        assert counts["load_s"] == (2, 2)
    cell = ("gpt2-124m", "st/fp32/lcmu=omit/dm=none", "ttft_s")
    assert store.series(root, *cell, by="release")["runs"].tolist() == [1]


def test_stacks_are_in_version_order(root: Path, tmp_path: Path) -> None:
    data = _data(history.build_history(root, tmp_path))
    assert data["stacks"] == ["tf4.46.3-torch2.5.1-py3.11", "tf4.57.6-torch2.8.0-py3.11",
                              "tf5.5.4-torch2.5.1-py3.11", "tf5.24.0-torch2.13.0-py3.11"]  # fmt: skip


def test_marks_are_kept_for_their_cell_only(root: Path, tmp_path: Path) -> None:
    unknown = ("no-such-model", *CELL[1:], "4.51.0", "x")
    data = _data(history.build_history(root, tmp_path, marks=[MARK, unknown]))
    assert list(data["marks"].values()) == [[["4.57.6", "peak steps down"]]]


def test_many_runs_are_bucketed_within_the_point_budget(root: Path) -> None:
    con = store.connect(root)
    try:
        exact = history.aggregate(con)
        coarse = history.aggregate(con, budget=10)
    finally:
        con.close()
    assert exact[2] is None
    assert coarse[2] == history.BUCKETS[-1]
    assert len(coarse[0]) < len(exact[0])
    # Same records, fewer points: the counts add up either way.
    assert coarse[0]["n"].sum() == exact[0]["n"].sum()


def test_page_size_grows_with_groups_not_records(tmp_path: Path) -> None:
    def run(run_id: str, repeats: int) -> Path:
        records = [make_record(repeat=r, run_id=run_id, peak=400.0 + r) for r in range(repeats)]
        return write_run(tmp_path / run_id, records)

    few, many = run("20260101-000000", 4), run("20260102-000000", 400)
    store.merge([few], tmp_path / "a")
    size_few = history.build_history(tmp_path / "a", tmp_path / "a-site").stat().st_size
    store.merge([few, many], tmp_path / "b")
    size_many = history.build_history(tmp_path / "b", tmp_path / "b-site").stat().st_size
    assert 0 < size_many - size_few < 2_000  # one more run: a point per metric, not 400 records


def test_hostile_names_are_text_never_markup(tmp_path: Path) -> None:
    evil = [make_record(model=XSS, stack=XSS, run_id=XSS, message=XSS, status="error"),
            make_record(model=XSS, stack=XSS, run_id=XSS)]  # fmt: skip
    root = tmp_path / "store"
    store.ingest(write_run(tmp_path / "run", evil), root)
    page = history.build_history(root, tmp_path / "site", marks=[(XSS, *CELL[1:], "4.46.3", XSS)])
    text = page.read_text(encoding="utf-8")
    assert "<img" not in text
    assert "onerror" in text  # it is there, as inert JSON text
    assert _data(page)["models"] == [XSS]
    assert "script-src 'self' file: 'sha256-" in text
    assert re.findall(r"<script>(.*?)</script>", text, re.DOTALL) == [history.LOADER]


# ---------------------------------------------------------------- real headless Chromium


def _drawn(page: Any) -> list[list[Any]]:
    page.wait_for_function("document.querySelectorAll('[data-chart] svg.main-svg').length >= 2")
    result: list[list[Any]] = page.evaluate(
        """() => [...document.querySelectorAll('[data-chart]')].map(d => [
            d.dataset.chart, d.querySelectorAll('g.trace').length,
            d.querySelectorAll('.shapelayer path').length])"""
    )
    return result


@pytest.mark.browser
def test_history_draws_in_chromium_and_names_stay_text(
    browser: Any, tmp_path: Path, shots: Path
) -> None:
    root = tmp_path / "store"
    store.merge([SMOKE, DEFAULT], root)
    hostile = write_run(tmp_path / "evil", [make_record(model=XSS, run_id="20261201-000000")])
    store.ingest(hostile, root)
    path = history.build_history(root, tmp_path / "site", marks=[MARK])
    page, problems = open_page(browser, path, 1300, 1000)
    # The hostile id sorts first: it is the one drawn on opening, as text.
    assert page.evaluate("document.getElementById('pick-model').selectedOptions[0].text") == XSS
    _drawn(page)
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    page.select_option("#pick-model", label="gpt2-124m")
    page.select_option("#pick-scenario", label=CELL[1])
    page.select_option("#pick-metric", value="3")  # peak_mb: the fourth of metrics.SHOWN
    assert page.evaluate("document.getElementById('pick-metric').selectedOptions[0].text") == (
        "peak memory (peak_mb)"
    )
    page.wait_for_timeout(300)
    drawn = {name: (traces, shapes) for name, traces, shapes in _drawn(page)}
    assert drawn["run"][0] == 4  # one line per stack
    assert drawn["release"][0] == 3  # one per torch version: 2.5.1, 2.8.0, 2.13.0
    assert drawn["release"][1] >= 1  # the mark's dotted line
    assert "peak steps down" in page.inner_text("#chart-release")
    page.screenshot(path=str(shots / "history.png"), full_page=True)
    assert problems == []
