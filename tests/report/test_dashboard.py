"""The static site: offline, escaped, claims computed; and a real headless Chromium look."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import plotly
import pytest
from pagekit import open_page
from recordkit import DEFAULT, HANDMADE, make_record, write_run

from harness.report import build, claims, dashboard

XSS = "<img src=x onerror=alert(1)>"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHARTS = ("memory", "peak_ratio", "speed", "compatibility", "memory_vs_size")


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def _figures(index: str) -> dict[str, Any]:
    found = re.search(
        r'<script type="application/json" id="figures">(.*?)</script>', index, re.DOTALL
    )
    assert found
    figures: dict[str, Any] = json.loads(found.group(1))
    return figures


def test_site_works_offline_with_the_shipped_plotly(tmp_path: Path) -> None:
    paths = build.build_reports([HANDMADE], tmp_path)
    index = paths.index_html.read_text(encoding="utf-8")
    shipped = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    assert paths.plotly_js.read_bytes() == shipped.read_bytes()
    assert '<script src="plotly.min.js"></script>' in index
    assert "cdn" not in index.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", index)
    for name in CHARTS:
        assert f'id="chart-{name}" data-chart="{name}"' in index
    assert list(_figures(index)) == list(CHARTS)


def test_csp_allows_only_the_loader_and_plotly(tmp_path: Path) -> None:
    index = build.build_reports([HANDMADE], tmp_path).index_html.read_text(encoding="utf-8")
    scripts = re.findall(r"<script>(.*?)</script>", index, re.DOTALL)
    assert scripts == [dashboard.LOADER]
    assert f"script-src 'self' file: {dashboard._csp_hash(dashboard.LOADER)};" in index
    claims_page = (tmp_path / "claims.html").read_text(encoding="utf-8")
    assert "script-src 'none'" in claims_page
    assert "<script" not in claims_page


def test_every_failure_is_listed_with_its_message(tmp_path: Path) -> None:
    index = build.build_reports([HANDMADE], tmp_path).index_html.read_text(encoding="utf-8")
    failures = index.split("<h2>Failures</h2>")[1].split("<h2>")[0]
    # One row per message: the error, and the install error of both of its cells.
    assert failures.count("<tr>") == 1 + 2
    assert (
        "tiny-gpt2/st/fp32/lcmu=omit/dm=none #0<br>tiny-gpt2/st/fp32/lcmu=false/dm=cpu #0</td>"
        '<td><div class="msg">uv pip install failed: No solution found'
    ) in failures
    unsupported = index.split("(unsupported)</h2>")[1].split("<h2>")[0]
    assert "requires `low_cpu_mem_usage=True`" in unsupported
    assert "tiny-gpt2/st/fp32/lcmu=false/dm=cpu #0,1" in unsupported


def test_record_strings_are_text_never_markup(tmp_path: Path) -> None:
    paths = build.build_reports([HANDMADE], tmp_path)
    for page in (paths.index_html, paths.claims_html, paths.markdown):
        text = page.read_text(encoding="utf-8")
        assert "<img" not in text.lower(), page.name
    index = paths.index_html.read_text(encoding="utf-8")
    assert "RuntimeError: &lt;img src=x onerror=alert(1)&gt; | boom" in index
    heat = _figures(index)["compatibility"]["data"][0]
    # Plotly renders hover text as HTML-ish labels: escaped, it shows the characters.
    assert any("&lt;img src=x onerror=alert(1)&gt;" in cell for row in heat["text"] for cell in row)


def test_names_from_records_are_escaped_in_attributes_and_tables(tmp_path: Path) -> None:
    evil = '"><svg onload=alert(1)>'  # no slash: it is also a file name
    run = write_run(tmp_path / "run", [make_record(stack=evil, model=evil, run_id=evil)])
    paths = build.build_reports([run])
    for page in (paths.index_html, paths.claims_html):
        text = page.read_text(encoding="utf-8")
        assert "<svg" not in text
        assert "&quot;&gt;&lt;svg onload=alert(1)&gt;" in text


def test_claims_page_shows_verdicts_computed_from_the_records(tmp_path: Path) -> None:
    weights = 124_000_000 * 4 / 2**20

    def page(true_peak: float) -> str:
        records = [make_record(lcmu=False, peak=2 * weights),
                   make_record(lcmu=True, peak=true_peak)]  # fmt: skip
        run = write_run(tmp_path / f"run{true_peak}", records)
        text = build.build_reports([run]).claims_html.read_text(encoding="utf-8")
        return text.split('id="claim-halves"')[1].split("</section>")[0]

    halved, same = page(weights), page(2 * weights)
    assert 'Verdict: <strong class="v-holds">holds</strong>' in halved
    assert "peak with true / peak with false = 0.50" in halved
    assert 'Verdict: <strong class="v-does-not-hold">does not hold</strong>' in same
    assert "= 1.00" in same


def test_claims_page_lists_every_claim_per_version(tmp_path: Path) -> None:
    text = build.build_reports([HANDMADE], tmp_path).claims_html.read_text(encoding="utf-8")
    for statement in ("low_cpu_mem_usage=True halves peak RAM",
                      "low_cpu_mem_usage=True is the default in transformers 5.5",
                      "RSS after from_pretrained shows the model&#x27;s memory",
                      "device_map needs accelerate",
                      "Peak RAM while loading a sharded checkpoint tracks the largest shard"):  # fmt: skip
        assert statement in text
    assert text.count("<td>4.46.3</td>") == len(claims.CHECKS)
    assert text.count("<td>5.5.4</td>") == len(claims.CHECKS)
    assert "no evidence in this run" in text


# ---------------------------------------------------------------- real headless Chromium


def _open(browser: Any, page_path: Path) -> tuple[Any, list[str]]:
    page, problems = open_page(browser, page_path, 1400, 1000)
    page.wait_for_function(
        "n => document.querySelectorAll('[data-chart] svg.main-svg').length >= n", arg=len(CHARTS)
    )
    return page, problems


@pytest.mark.browser
def test_dashboard_of_a_real_run_draws_every_chart(browser: Any, tmp_path: Path) -> None:
    paths = build.build_reports([DEFAULT], tmp_path)
    page, problems = _open(browser, paths.index_html)
    drawn = page.evaluate(
        """() => [...document.querySelectorAll('[data-chart]')].map(d => [
            d.dataset.chart,
            d.querySelectorAll('svg.main-svg').length,
            d.querySelectorAll('g.trace, g.hm, image').length,
            d.getBoundingClientRect().height])"""
    )
    assert [c[0] for c in drawn] == list(CHARTS)
    for name, svgs, traces, height in drawn:
        assert svgs >= 1, name
        assert traces >= 1, name
        assert height > 200, name
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    claims, claim_problems = _open_claims(browser, paths.claims_html)
    claims.screenshot(path=str(ARTIFACTS / "claims.png"), full_page=True)
    assert problems == []
    assert claim_problems == []


def _open_claims(browser: Any, page_path: Path) -> tuple[Any, list[str]]:
    page, problems = open_page(browser, page_path, 1400, 1000, every_message=True)
    assert page.locator("section h2").count() == len(claims.CHECKS)
    return page, problems


@pytest.mark.browser
def test_an_xss_message_renders_as_text_in_page_and_hover(browser: Any, tmp_path: Path) -> None:
    paths = build.build_reports([HANDMADE], tmp_path)
    page, problems = _open(browser, paths.index_html)
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert XSS in page.inner_text("body")
    # The mouse on the heatmap cell of tf5.5.4 (second of three rows) and the first scenario.
    plot_area = page.locator("#chart-compatibility .nsewdrag").first
    box = plot_area.bounding_box()
    plot_area.hover(position={"x": box["width"] * 0.25, "y": box["height"] * 0.5})
    hover = page.locator("#chart-compatibility .hovertext").text_content()
    assert XSS in hover
    assert "RuntimeError" in hover
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard-xss-hover.png"))
    assert problems == []


def test_missing_goldens_are_counted_and_warned_about(tmp_path: Path) -> None:
    records = [make_record(golden="missing", repeat=r) for r in range(3)]
    records.append(make_record(golden="match", repeat=3))
    index = build.build_reports([write_run(tmp_path / "run", records)]).index_html
    text = index.read_text(encoding="utf-8")
    assert "Golden: 1 match, 3 missing." in text
    assert "<strong>3 records have no golden</strong>" in text
