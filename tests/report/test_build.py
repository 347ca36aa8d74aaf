"""summary.md, the written files, several runs and machines, and the command line."""

from __future__ import annotations

import subprocess
import sys
from typing import TYPE_CHECKING

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recordkit import HANDMADE, SMOKE, copy_run, make_record, write_run

from harness import records as rec
from harness.commands import report as report_cmd
from harness.report import build, plots, tables

if TYPE_CHECKING:
    from pathlib import Path

    from harness.records import Record

# summary.md of tests/data/handmade, character for character (reviewed by hand).
EXPECTED_MD = (HANDMADE / "expected_summary.md").read_text(encoding="utf-8")


@pytest.fixture(autouse=True)
def _no_step_summary(monkeypatch: pytest.MonkeyPatch) -> None:
    # CI sets GITHUB_STEP_SUMMARY; tests must not append to the real one.
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def test_summary_md_is_exact(tmp_path: Path) -> None:
    paths = build.build_reports([HANDMADE], tmp_path)
    assert paths.markdown.read_text(encoding="utf-8") == EXPECTED_MD


def test_every_file_lands_in_the_first_run_folder(tmp_path: Path) -> None:
    run = copy_run(HANDMADE, tmp_path / "run")
    paths = build.build_reports([run])
    assert paths.out_dir == run
    for path in (paths.parquet, paths.csv, paths.markdown, paths.index_html,
                 paths.claims_html, paths.plotly_js):  # fmt: skip
        assert path.parent == run
        assert path.stat().st_size > 0
    frame = pd.read_parquet(paths.parquet)
    assert len(frame) == 10
    assert set(frame["low_cpu_mem_usage"]) == {"omit", "false"}
    csv = pd.read_csv(paths.csv)
    assert len(csv) == 6
    assert {"peak_mb_median", "peak_mb_q1", "peak_mb_q3", "peak_mb_min", "peak_mb_max",
            "status", "golden", "machine_fingerprint"} <= set(csv.columns)  # fmt: skip
    assert paths.pngs == ()
    assert paths.png_note is None


def test_markdown_is_appended_to_the_github_step_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step = tmp_path / "step_summary.md"
    step.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step))
    build.build_reports([HANDMADE], tmp_path / "out")
    assert step.read_text(encoding="utf-8") == "earlier step\n" + EXPECTED_MD + "\n"


def test_records_of_several_machines_are_never_pooled(tmp_path: Path) -> None:
    other = [
        {**r, "run_id": "20260102-000000", "machine_fingerprint": "bbbbbbbbbbbb"}
        for r in rec.read_run(HANDMADE)
        if r["machine_fingerprint"]
    ]
    run2 = write_run(tmp_path / "run2", other)
    paths = build.build_reports([HANDMADE, run2], tmp_path / "out")
    summary = pd.read_csv(paths.csv)
    assert len(summary) == 6 + 4
    assert set(summary["machine_fingerprint"]) == {"aaaaaaaaaaaa", "bbbbbbbbbbbb"}
    text = paths.markdown.read_text(encoding="utf-8")
    assert "machines `aaaaaaaaaaaa` (Test CPU, 2 cores, 2.0 GiB), `bbbbbbbbbbbb`" in text
    assert "**Several machines:**" in text
    assert "| machine | stack | model | scenario |" in text


def test_repeats_of_several_runs_on_one_machine_are_pooled(tmp_path: Path) -> None:
    again = [{**r, "run_id": "20260102-000000"} for r in rec.read_run(HANDMADE)]
    run2 = write_run(tmp_path / "run2", again)
    summary = pd.read_csv(build.build_reports([HANDMADE, run2], tmp_path / "out").csv)
    assert len(summary) == 6
    assert set(summary["runs"]) == {2}


def test_the_same_run_given_twice_is_read_once(tmp_path: Path) -> None:
    run = copy_run(HANDMADE, tmp_path / "run")
    (tmp_path / "latest").symlink_to(run.name)
    assert len(build.load_records([tmp_path / "latest", run])) == 10


def test_markdown_stays_within_a_pr_comment() -> None:
    records = [make_record(stack=f"tf4.{i}.0-torch2.5.1-py3.11", tf=f"4.{i}.0", repeat=r,
                           message="x" * 200, status="error" if i % 7 == 0 else "ok")
               for i in range(400) for r in range(2)]  # fmt: skip
    df = tables.to_frame(records)
    text = build.render_markdown(df, tables.summarize(df))
    assert len(text) <= build.MARKDOWN_BUDGET
    assert "more rows in summary.csv" in text
    assert text.endswith("</details>\n")


def test_md_cell_makes_record_text_inert() -> None:
    assert build.md_cell("a|b <script>\nc") == "a\\|b &lt;script&gt; c"
    assert build.md_cell(None) == ""
    assert build.md_cell("x" * 500, limit=10) == "x" * 9 + "…"


def test_real_smoke_run(tmp_path: Path) -> None:
    paths = build.build_reports([SMOKE], tmp_path)
    text = paths.markdown.read_text(encoding="utf-8")
    assert "4 stacks · 1 model · 2 scenarios · 8 records" in text
    assert "### Failures (0)" in text


# ---------------------------------------------------------------- command line


def test_cli_writes_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report_cmd.main([str(HANDMADE), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"report: {tmp_path / 'index.html'}" in out
    assert (tmp_path / "summary.md").exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["{tmp}/missing"], "missing: no such run folder"),
        (["{tmp}"], "no records in"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], fragment: str
) -> None:
    code = report_cmd.main([a.format(tmp=tmp_path) for a in args])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1
    assert err.startswith("harness: error: ")
    assert fragment in err


def test_cli_torn_record_file_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tmp_path / "run" / "raw"
    raw.mkdir(parents=True)
    (raw / "s.jsonl").write_text("{not json\n", encoding="utf-8")
    assert report_cmd.main([str(tmp_path / "run")]) == 2
    assert "unreadable record file" in capsys.readouterr().err


def test_png_without_an_exporter_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plots, "has_image_exporter", lambda: False)
    assert report_cmd.main([str(HANDMADE), "--out", str(tmp_path), "--png"]) == 0
    err = capsys.readouterr().err
    assert err == "PNG export skipped: no image exporter installed (pip install kaleido)\n"
    assert not (tmp_path / "png").exists()
    assert (tmp_path / "index.html").exists()


def test_python_dash_m_entry_point(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "report", str(tmp_path / "nope")],
        capture_output=True, text=True, check=False, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr == f"harness: error: {tmp_path / 'nope'}: no such run folder\n"


def test_report_paths_are_frozen(tmp_path: Path) -> None:
    paths = build.build_reports([HANDMADE], tmp_path)
    with pytest.raises(AttributeError):
        paths.markdown = tmp_path  # type: ignore[misc]


def _failed(status: str, stack: str, model: str, repeat: int) -> Record:
    # As install_error_records writes them: no versions, no parameter count, no machine.
    record = make_record(stack=stack, tf=None, torch=None, accelerate=None, model=model,
                         status=status, message=f"{status} <b>", repeat=repeat, fingerprint=None)  # fmt: skip
    record["params"] = record["param_bytes"] = None
    return record


def test_a_run_whose_every_record_failed_still_reports(tmp_path: Path) -> None:
    # It raised "boolean value of NA is ambiguous" in model_order: no record had params.
    records = [_failed("install_error", "tf9.9.9-torch2.13.0-py3.11", m, r)
               for m in ("tiny-gpt2", "gpt2-124m") for r in range(2)]  # fmt: skip
    paths = build.build_reports([write_run(tmp_path / "run", records)])
    text = paths.markdown.read_text(encoding="utf-8")
    assert "### Failures (4)" in text
    assert "install_error" in paths.index_html.read_text(encoding="utf-8")


_STATUSES = st.sampled_from(["ok", "unsupported", "install_error", "error", "timeout", "killed"])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.tuples(_STATUSES, st.sampled_from(["tiny-gpt2", "gpt2-124m"]),
                          st.sampled_from(["tf4.46.3-torch2.5.1-py3.11", "tf5.5.4-torch2.5.1-py3.11"])),
                min_size=1, max_size=8))  # fmt: skip
def test_reports_build_from_any_mix_of_statuses(
    tmp_path_factory: pytest.TempPathFactory, mix: list[tuple[str, str, str]]
) -> None:
    records = [
        make_record(stack=stack, model=model, status=status, repeat=i)
        if status in ("ok", "unsupported")
        else _failed(status, stack, model, i)
        for i, (status, model, stack) in enumerate(mix)
    ]
    run = write_run(tmp_path_factory.mktemp("run"), records)
    paths = build.build_reports([run])
    failing = sum(1 for s, _, _ in mix if s not in ("ok", "unsupported"))
    assert f"### Failures ({failing})" in paths.markdown.read_text(encoding="utf-8")
    assert len(pd.read_parquet(paths.parquet)) == len(mix)


def test_the_dashboard_names_each_change_point_of_a_sweep(tmp_path: Path) -> None:
    run = copy_run(SMOKE.parent / "sweep-truth", tmp_path / "run")
    assert report_cmd.main([str(run)]) == 0
    index = (run / "index.html").read_text(encoding="utf-8")
    section = index.split('id="change-points"', 1)[1].split("<h2", 1)[0]
    assert (
        "status of gpt2-124m/st/fp32/lcmu=false/dm=cpu steps from unsupported to ok (better) "
        "at transformers 4.51.3 (after 4.50.3)"
    ) in section
    assert "peak_ratio of gpt2-124m/st/fp32/lcmu=omit/dm=none steps down 46%" in section


def test_change_point_sentences_are_text_never_markup(tmp_path: Path) -> None:
    run = copy_run(SMOKE, tmp_path / "run")
    build.build_reports([run], steps=lambda _: ["<img src=x onerror=alert(1)>"])
    index = (run / "index.html").read_text(encoding="utf-8")
    assert "<img src=x" not in index
    assert "&lt;img src=x onerror=alert(1)&gt;" in index
