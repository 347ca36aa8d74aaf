"""harness publish: a static site from runs or from the results store, opened from file://."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from pagekit import open_page
from recordkit import DATA, DEFAULT, make_record, write_run

from harness import records as rec
from harness.commands import publish
from harness.report import compat, store

REPO = Path(__file__).resolve().parents[2]
XSS = "<img src=x onerror=alert(1)>"


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(
        self,
        tag: str,  # noqa: ARG002 - HTMLParser calls it so
        attrs: list[tuple[str, str | None]],
    ) -> None:
        for name, value in attrs:
            if name in ("href", "src") and value and not value.startswith(("#", "data:")):
                self.found.append(value)


def links(page: Path) -> list[str]:
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser.found


def assert_self_contained(site: Path) -> None:
    """Every link of every page is relative and lands on a file inside the site."""
    for page in site.rglob("*.html"):
        for href in links(page):
            assert not re.match(r"[a-z]+:", href), (page, href)  # no http:, file:, javascript:
            target = (page.parent / href.split("#")[0]).resolve()
            assert target.is_relative_to(site.resolve()), (page, href)
            assert target.exists(), (page, href)


def test_publish_runs_builds_a_self_contained_site(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    site, root = tmp_path / "site", tmp_path / "store"
    assert publish.main([str(DEFAULT), "--out", str(site), "--store", str(root)]) == 0
    for name in (
        "index.html",
        "compat.html",
        "badge.svg",
        "history.html",
        "latest/index.html",
        "latest/claims.html",
    ):
        assert (site / name).is_file(), name
    assert_self_contained(site)
    # The records the compatibility page links to were copied into the site.
    records = rec.read_run(DEFAULT)
    run_id = str(records[0]["run_id"])
    copied = sorted(p.name for p in (site / "runs" / run_id / "raw").glob("*.jsonl"))
    assert copied == sorted(p.name for p in (DEFAULT / "raw").glob("*.jsonl"))
    # ... and added to the store, which the runs index reads.
    assert store.query(root, "SELECT count(*) AS n FROM records")["n"][0] == len(records)
    index = (site / "index.html").read_text(encoding="utf-8")
    assert f'href="runs/{run_id}/raw/"' in index
    assert str(len(records)) in index
    assert "site:" in capsys.readouterr().out


def test_publish_builds_the_compatibility_page_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Path] = []
    real = compat.build_compat

    def counted(*args: Any, **kwargs: Any) -> Path:
        built.append(real(*args, **kwargs))
        return built[-1]

    monkeypatch.setattr(compat, "build_compat", counted)
    site = tmp_path / "site"
    assert publish.main([str(DEFAULT), "--out", str(site), "--store", str(tmp_path / "st")]) == 0
    assert built == [site / "compat.html"]
    assert not (site / "latest" / "compat.html").exists()
    # The dashboard and claims pages link up to the site's one page.
    for page in ("index.html", "claims.html"):
        assert 'href="../compat.html"' in (site / "latest" / page).read_text(encoding="utf-8")


def test_publish_without_runs_takes_the_newest_run_of_each_stack(tmp_path: Path) -> None:
    root, site = tmp_path / "store", tmp_path / "site"
    old = make_record(stack_id="tf4.46.3-torch2.5.1-py3.11", run_id="20260101-000000", status="error", message="old failure")  # fmt: skip
    new = make_record(stack_id="tf4.46.3-torch2.5.1-py3.11", run_id="20260201-000000")
    store.ingest(write_run(tmp_path / "old", [old]), root)
    store.ingest(write_run(tmp_path / "new", [new]), root)
    assert publish.main(["--out", str(site), "--store", str(root)]) == 0
    compat = (site / "compat.html").read_text(encoding="utf-8")
    assert 'data-status="ok"' in compat
    assert "old failure" not in compat  # the older run is history, not the current picture
    assert "20260101-000000" in (site / "index.html").read_text(encoding="utf-8")  # still indexed
    assert_self_contained(site)


def test_hostile_strings_are_escaped_on_the_landing_page(tmp_path: Path) -> None:
    root, site = tmp_path / "store", tmp_path / "site"
    store.ingest(write_run(tmp_path / "run", [make_record(run_id=XSS)]), root)
    assert publish.main(["--out", str(site), "--store", str(root)]) == 0
    for page in ("index.html", "compat.html"):
        text = (site / page).read_text(encoding="utf-8")
        assert XSS not in text, page


def test_an_empty_store_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert publish.main(["--out", str(tmp_path / "site"), "--store", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("harness: error: nothing to publish"), err
    assert "\n" not in err
    assert publish.main([str(tmp_path / "missing"), "--out", str(tmp_path / "s")]) == 2


@pytest.mark.browser
def test_the_published_site_opens_from_file_without_console_errors(
    browser: Any, tmp_path: Path, shots: Path
) -> None:
    site = tmp_path / "site"
    runs = [DEFAULT, DATA / "compat"]
    assert publish.main([*map(str, runs), "--out", str(site), "--store", str(tmp_path / "st")]) == 0
    for name in ("index.html", "compat.html", "history.html", "latest/index.html"):
        page, problems = open_page(browser, site / name, 1280, 900)
        page.wait_for_load_state("load")
        assert problems == [], (name, problems)
        if name == "index.html":
            # The landing page links every part of the site and shows the badge it made.
            assert (
                page.locator("img[alt='transformers compatibility']").evaluate(
                    "i => i.naturalWidth"
                )
                > 0
            )
            hrefs = page.locator("nav a").evaluate_all("as => as.map(a => a.getAttribute('href'))")
            assert set(hrefs) >= {"compat.html", "history.html", "latest/index.html"}
            page.screenshot(path=str(shots / "site.png"), full_page=True)
        page.close()


@pytest.mark.browser
def test_nox_publish_builds_a_site_chromium_opens_from_file(browser: Any, tmp_path: Path) -> None:
    """The session users run: `nox -s publish -- RUN_DIR --out SITE_DIR`."""
    site = tmp_path / "site"
    env = {k: v for k, v in os.environ.items() if not k.startswith("NOX_")}
    env["HARNESS_STORE"] = str(tmp_path / "store")
    cmd = [sys.executable, "-m", "nox", "-f", str(REPO / "noxfile.py"), "-s", "publish",
           "--", str(DATA / "sweep-truth"), "--out", str(site)]  # fmt: skip
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert_self_contained(site)
    page, problems = open_page(browser, site / "index.html", 390, 800)  # a phone's width
    steps = page.locator("ul li").all_inner_texts()
    assert any("status of gpt2-124m/st/fp32/lcmu=false/dm=cpu steps from unsupported to ok" in s and "4.51.3" in s for s in steps), steps  # fmt: skip
    page.goto((site / "compat.html").as_uri())
    assert page.locator("[data-stack]").count() == 6  # one block per release of the sweep
    assert problems == []
