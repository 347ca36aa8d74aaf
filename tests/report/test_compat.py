"""compat.html and badge.svg: every block agrees with the records, escaped, offline; Chromium."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote
from xml.etree import ElementTree as ET

import pytest
from pagekit import open_page
from recordkit import DATA, DEFAULT, HANDMADE, copy_run, make_record, write_run

from harness import metrics
from harness import records as rec
from harness.report import badge, build, compat

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

COMPAT = DATA / "compat"  # ok, error (hostile message), golden mismatch, install_error
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


@dataclass
class Block:
    """One stack's block as the page shows it; attribute values unescaped by the parser."""

    data: dict[str, str]
    title: str = ""
    links: list[str] = field(default_factory=list)
    scenarios: list[dict[str, str]] = field(default_factory=list)


class Page(HTMLParser):
    """The blocks, the grids' header cells and every tag name of compat.html."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.blocks: list[Block] = []
        self.headers: dict[str, list[str]] = defaultdict(list)  # model -> th texts
        self.tags: list[str] = []
        self._model = ""
        self._th: list[str] | None = None
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append(tag)
        if tag == "section":
            self._model = a["data-model"]
        elif tag == "div" and "stack" in a.get("class", "").split():
            self.blocks.append(Block({k[5:]: v for k, v in a.items() if k.startswith("data-")}))
        elif tag == "summary" and self.blocks:
            self.blocks[-1].title = a.get("title", "")
        elif tag == "a" and self.blocks and "href" in a:
            self.blocks[-1].links.append(a["href"])
        elif tag == "tr" and "data-scenario" in a:
            self.blocks[-1].scenarios.append({"scenario": a["data-scenario"],
                                              "status": a["data-status"]})  # fmt: skip
        elif tag == "th" and a.get("scope") in {"row", "col"}:
            self._th = []

    def handle_data(self, data: str) -> None:
        if self._th is not None:
            self._th.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "th" and self._th is not None:
            self.headers[self._model].append("".join(self._th))
            self._th = None


def _build(run: Path, out: Path) -> tuple[Page, str]:
    page = compat.build_compat(build.load_records([run]), out, raw_dirs=[run / "raw"])
    text = page.read_text(encoding="utf-8")
    return Page(text), text


def _expected(records: Sequence[rec.Record]) -> dict[tuple[str, str], tuple[str, int, int, str]]:
    """Per (model, stack), straight from the records: state, ok scenarios, scenarios and the
    message of the worst record (the worst failing status, else a failing golden verdict)."""
    groups: dict[tuple[str, str], list[rec.Record]] = defaultdict(list)
    for r in records:
        groups[r["model"], r["stack_id"]].append(r)
    out: dict[tuple[str, str], tuple[str, int, int, str]] = {}
    for key, rs in groups.items():
        scenarios = {r["scenario"] for r in rs}
        good = {s for s in scenarios
                if all(r["status"] == "ok" and r.get("golden") not in metrics.GOLDEN_FAILING
                       for r in rs if r["scenario"] == s)}  # fmt: skip
        failing = [r for r in rs if r["status"] not in metrics.GOOD_STATUSES]
        golden = [
            r for r in rs if r["status"] == "ok" and r.get("golden") in metrics.GOLDEN_FAILING
        ]
        unsupported = [r for r in rs if r["status"] == "unsupported"]
        state: str
        if failing:
            worst = max(failing, key=lambda r: metrics.STATUS_RANK[r["status"]])
            state, message = worst["status"], worst["message"]
        elif golden:
            state, message = "golden mismatch", "golden mismatch"
        elif unsupported:
            state, message = "unsupported", unsupported[0]["message"]
        else:
            state, message = "ok", ""
        out[key] = (state, len(good), len(scenarios), message)
    return out


@pytest.mark.parametrize("run", [DEFAULT, COMPAT, HANDMADE], ids=lambda p: p.name)
def test_every_block_agrees_with_the_records(run: Path, tmp_path: Path) -> None:
    page, _ = _build(run, tmp_path)
    records = build.load_records([run])
    expected = _expected(records)
    shown = {(b.data["model"], b.data["stack"]): b for b in page.blocks}
    assert set(shown) == set(expected)
    for key, (state, ok, total, message) in expected.items():
        block = shown[key]
        assert block.data["status"] == state, key
        assert block.data["count"] == f"{ok}/{total}", key
        if state == "ok":
            assert block.title == f"ok: all {total} scenarios"
        elif state == "golden mismatch":
            assert block.title.startswith("golden mismatch: "), block.title
        else:
            assert block.title == message, key  # the hover reason is the record's message
        scenarios = {r["scenario"] for r in records if (r["model"], r["stack_id"]) == key}
        assert {s["scenario"] for s in block.scenarios} == scenarios


def test_each_state_once_with_its_reason_and_drill_down(tmp_path: Path) -> None:
    page, text = _build(COMPAT, tmp_path)
    found = {b.data["stack"]: (b.data["status"], b.data["count"]) for b in page.blocks}
    assert found == {
        "tf4.57.6-torch2.8.0-py3.11": ("ok", "5/5"),
        "tf5.5.4-torch2.5.1-py3.11": ("error", "4/5"),
        "tf5.24.0-torch2.13.0-py3.11": ("golden mismatch", "4/5"),
        "tf5.24.0-torch2.13.0-py3.12": ("install_error", "0/5"),
    }
    mismatch = next(b for b in page.blocks if b.data["status"] == "golden mismatch")
    assert "mismatch at new token 3: expected ' the' (margin 2.5), got ' a'" in mismatch.title
    changed = [s for s in mismatch.scenarios if s["status"] != "ok"]
    assert changed == [{"scenario": "st/fp32/lcmu=omit/dm=none", "status": "golden mismatch"}]
    # Both repeats of that scenario ran ok; the golden column shows the worst verdict.
    assert "<td>2 ok</td><td>mismatch</td>" in text
    errors = next(b for b in page.blocks if b.data["status"] == "error")
    assert [s["status"] for s in errors.scenarios] == ["ok", "error", "ok", "ok", "ok"]


def test_rows_and_columns_are_in_release_order(tmp_path: Path) -> None:
    page, _ = _build(COMPAT, tmp_path)
    # 5.24.0 after 5.5.4 (not as text sorts); torch 2.13.0+cpu and the id's 2.13.0: one column.
    assert page.headers["tiny-gpt2"] == [
        "transformers \N{DOWNWARDS ARROW} torch \N{RIGHTWARDS ARROW}",
        "2.5.1", "2.8.0", "2.13.0", "4.57.6", "5.5.4", "5.24.0",
    ]  # fmt: skip
    both = [b.data["stack"] for b in page.blocks if b.data["transformers"] == "5.24.0"]
    assert both == ["tf5.24.0-torch2.13.0-py3.11", "tf5.24.0-torch2.13.0-py3.12"]


@pytest.mark.parametrize("separate", [False, True], ids=["in-run", "out-elsewhere"])
def test_links_open_the_stack_records(tmp_path: Path, separate: bool) -> None:
    run = copy_run(COMPAT, tmp_path / "run")
    out = tmp_path / "site" / "report" if separate else run
    page, _ = _build(run, out)
    for block in page.blocks:
        (link,) = block.links
        target = (out / unquote(link)).resolve()
        assert target == (run / "raw" / f"{block.data['stack']}.jsonl").resolve()
        assert {r["stack_id"] for r in rec.read(target)} == {block.data["stack"]}
    assert not separate or page.blocks[0].links[0].startswith("../../run/raw/")


def test_records_from_a_store_get_no_links(tmp_path: Path) -> None:
    page, _ = _build(COMPAT, tmp_path)  # raw_dirs given: links
    assert all(b.links for b in page.blocks)
    path = compat.build_compat(build.load_records([COMPAT]), tmp_path / "store")
    assert all(not b.links for b in Page(path.read_text(encoding="utf-8")).blocks)


HOSTILE = '<script>alert("x")</script>\'"><img src=x onerror=alert(1)>'


def test_hostile_strings_are_text_never_markup(tmp_path: Path) -> None:
    evil = '"><svg onload=alert(1)>'  # no slash: it is also a file name
    records = [
        make_record(model=HOSTILE, stack=evil, tf=evil, status="error", message=HOSTILE),
        make_record(model=HOSTILE, status="unsupported", message=HOSTILE, run_id=HOSTILE),
    ]
    run = write_run(tmp_path / "run", records)
    page, text = _build(run, run)
    assert "<script" not in text.lower()
    assert "<img src=x" not in text.lower()
    assert "<svg" not in text.lower()
    # Nothing a record said became an element: one section, the badge the only image.
    assert (page.tags.count("section"), page.tags.count("img")) == (1, 1)
    assert {b.data["model"] for b in page.blocks} == {HOSTILE}
    assert {b.title for b in page.blocks} == {HOSTILE}
    assert {b.data["stack"] for b in page.blocks} == {evil, "tf4.46.3-torch2.5.1-py3.11"}
    assert "script-src 'none'" in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert not (tmp_path / "x").exists()
    link = next(b.links[0] for b in page.blocks if b.data["stack"] == evil)
    assert (run / unquote(link)).is_file()
    # The badge names the release of the evil stack only if it worked; its text still parses.
    svg = ET.fromstring(badge.badge_svg(HOSTILE, evil))  # noqa: S314 - our own output
    assert svg.findtext(f"{SVG}title") == f"{HOSTILE}: {evil}"


def _badge(path: Path) -> tuple[str, str]:
    svg = ET.parse(path).getroot()  # noqa: S314 - our own output
    texts = [t.text for t in svg.iter(f"{SVG}text") if t.get("aria-hidden") is None]
    fills = [r.get("fill") for r in svg.iter(f"{SVG}rect")]
    assert texts[0] == "transformers"
    assert svg.findtext(f"{SVG}title") == f"transformers: {texts[1]}"
    return str(texts[1]), str(fills[2])  # after the clip path and the label


@pytest.mark.parametrize(
    ("run", "text", "colour"),
    [
        # 4.46.3 and 5.5.4 have unsupported scenarios: 5.5.4 sits inside the range.
        (DEFAULT, "4.57.6\N{EN DASH}5.24.0", badge.YELLOW),
        # 5.5.4 errs; 5.24.0 has a golden mismatch and a stack that did not install.
        (COMPAT, "4.57.6", badge.GREEN),
        (HANDMADE, "none", badge.GREY),
    ],
    ids=["default", "compat", "handmade"],
)
def test_badge_names_the_releases_where_everything_is_ok(
    run: Path, text: str, colour: str, tmp_path: Path
) -> None:
    _, page = _build(run, tmp_path)
    assert _badge(tmp_path / "badge.svg") == (text, colour)
    assert f'alt="transformers: {text}"' in page


def test_badge_range_follows_the_records(tmp_path: Path) -> None:
    records = [make_record(stack=f"tf{v}-torch2.5.1-py3.11", tf=v, golden="match") for v in
               ("4.44.2", "4.51.3", "4.9.0", "5.0.0")]  # fmt: skip
    records.append(make_record(stack="tf4.51.3-torch2.8.0-py3.11", tf="4.51.3", torch="2.8.0",
                               status="error", message="boom"))  # fmt: skip
    compat.build_compat(records, tmp_path)
    # 4.9.0 is older than 4.44.2; 4.51.3 fails on one of its two torch releases.
    assert _badge(tmp_path / "badge.svg") == ("4.9.0\N{EN DASH}5.0.0", badge.YELLOW)
    records[-1]["status"] = "ok"
    compat.build_compat(records, tmp_path)
    assert _badge(tmp_path / "badge.svg") == ("4.9.0\N{EN DASH}5.0.0", badge.GREEN)


def test_badge_markdown_snippet() -> None:
    assert compat.badge_markdown() == "[![transformers compatibility](badge.svg)](compat.html)"
    assert (
        badge.badge_markdown("a b(1).svg", "c)", alt="[x]")
        == "[![\\[x\\]](a%20b%281%29.svg)](c%29)"
    )


def test_harness_report_writes_the_page_and_badge(tmp_path: Path) -> None:
    run = copy_run(COMPAT, tmp_path / "run")
    paths = build.build_reports([run])
    assert paths.compat_html == run / "compat.html"
    assert (run / "badge.svg").is_file()
    text = (run / "compat.html").read_text(encoding="utf-8")
    assert '<a href="index.html">Dashboard</a>' in text
    assert Page(text).blocks[0].links == ["raw/tf4.57.6-torch2.8.0-py3.11.jsonl"]


# ---------------------------------------------------------------- real headless Chromium


def _site(tmp_path: Path) -> Path:
    """The default run and the every-state fixture, reported together as `harness report`."""
    runs = [copy_run(DEFAULT, tmp_path / "default"), copy_run(COMPAT, tmp_path / "compat")]
    page = build.build_reports(runs, tmp_path / "report").compat_html
    assert page is not None
    return page


@pytest.mark.browser
@pytest.mark.parametrize("width", [1280, 375])
def test_page_renders_scrolls_and_drills_down(
    browser: Any, tmp_path: Path, width: int, shots: Path
) -> None:
    page, problems = open_page(browser, _site(tmp_path), width, 900, every_message=True)
    assert page.evaluate("document.querySelector('img').naturalWidth") > 100  # the badge drew
    # The body never scrolls sideways; a grid wider than the screen scrolls in its own box.
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    boxes = page.evaluate("""() => [...document.querySelectorAll('.scroll')].map(
        s => [s.scrollWidth, s.clientWidth])""")
    assert len(boxes) == 3  # the three models
    if width == 375:
        assert any(scroll > client for scroll, client in boxes)
        box = page.locator(".scroll").first
        before = page.locator("th[scope=row]").first.bounding_box()["x"]
        box.evaluate("el => el.scrollLeft = el.scrollWidth")
        assert box.evaluate("el => el.scrollLeft") > 0
        assert page.locator("th[scope=row]").first.bounding_box()["x"] == before  # sticky
    error = page.locator('.stack[data-status="error"]')
    assert not error.locator("table.scen").is_visible()
    error.locator("summary").click()
    assert error.locator("details").evaluate("d => d.open")
    row = error.locator('tr[data-status="error"] td.msg')
    assert row.is_visible()
    assert row.inner_text() == (
        "RuntimeError: <script>alert(\"x\")</script> can't load 'it' & more"
    )
    assert page.evaluate("document.querySelectorAll('script, img[src=x]').length") == 0
    mismatch = page.locator('.stack[data-status="golden mismatch"]')
    mismatch.locator("summary").click()
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    page.locator(".scroll").first.evaluate("el => el.scrollLeft = 0")
    name = "compat.png" if width == 1280 else "compat-phone.png"
    page.screenshot(path=str(shots / name), full_page=True)
    assert problems == []
