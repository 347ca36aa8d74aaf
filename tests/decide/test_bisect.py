"""harness.decide.bisect, harness.decide.releases and harness.measure.probe: listing, ordering, bisection, caching.

The unit tests need no stack and no index (pip is replaced by canned output). The one
end-to-end test bisects real transformers releases on torch 2.13 CPU.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest

from harness import provenance, records
from harness.commands import bisect as bisect_cmd
from harness.config import sweeps
from harness.config.matrix import Cell, Model, Scenario, Stack
from harness.decide import bisect, releases
from harness.measure import probe
from harness.measure.probe import Measurement

if TYPE_CHECKING:
    from pathlib import Path

PIP_INDEX = """\
WARNING: pip index is currently an experimental command.
transformers (4.57.6)
Available versions: 4.57.6, 4.57.1, 4.56.0, 4.52.1, 4.51.3, 4.51.0, 4.50.3, 4.50.0rc1, \
4.49.0, 4.48.0, 4.47.0, 4.46.3, 4.9.2, 4.10.0
"""
PIP_DOWNLOAD_ERROR = """\
ERROR: Could not find a version that satisfies the requirement transformers==0 \
(from versions: 4.9.2, 4.10.0, 4.46.3, 4.47.0.dev0, 4.51, 4.51.0)
ERROR: No matching distribution found for transformers==0
"""


def completed(stdout: str = "", stderr: str = "", code: int = 0) -> Any:
    return subprocess.CompletedProcess([], code, stdout, stderr)


# ---------------------------------------------------------------- releases


def test_parse_pip_index_and_pip_download_outputs() -> None:
    assert releases.parse(PIP_INDEX)[:3] == ["4.57.6", "4.57.1", "4.56.0"]
    assert releases.parse(PIP_DOWNLOAD_ERROR) == [
        "4.9.2", "4.10.0", "4.46.3", "4.47.0.dev0", "4.51", "4.51.0",
    ]  # fmt: skip
    assert releases.parse("ERROR: ... (from versions: none)") == []
    assert releases.parse("nothing useful") == []


def test_ordered_is_numeric_final_and_deduplicated() -> None:
    listed = sweeps.ordered([*releases.parse(PIP_DOWNLOAD_ERROR), "not-a-version", "4.50.0rc1"])
    assert listed == ["4.9.2", "4.10.0", "4.46.3", "4.51"]
    assert sweeps.ordered(["4.50.0rc1", "4.49.0"], pre=True) == ["4.49.0", "4.50.0rc1"]


def test_between_includes_both_ends() -> None:
    versions = releases.parse(PIP_INDEX)
    assert releases.between(versions, "4.46.3", "4.51.3") == [
        "4.46.3", "4.47.0", "4.48.0", "4.49.0", "4.50.3", "4.51.0", "4.51.3",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("good", "bad", "fragment"),
    [
        ("4.46.9", "4.51.0", "4.46.9 is not a released version (released in 4.46: 4.46.3)"),
        ("4.46.3", "4.99.0", "4.99.0 is not a released version"),
        ("4.51.0", "4.46.3", "must be older than the bad one"),
        ("4.51.0", "4.51.0", "must be older than the bad one"),
        ("four", "4.51.0", "Invalid version"),
    ],
)
def test_between_refuses_bad_ends(good: str, bad: str, fragment: str) -> None:
    with pytest.raises(releases.ReleasesError, match=re.escape(fragment)):
        releases.between(releases.parse(PIP_INDEX), good, bad)


def test_listing_is_cached_and_reused_offline(tmp_path: Path) -> None:
    calls: list[list[str]] = []

    def pip(args: list[str]) -> Any:
        calls.append(args)
        return completed(PIP_INDEX)

    cache = tmp_path / "versions" / "transformers.json"
    first = releases.listing("transformers", cache, must_hold=("4.46.3",), runner=pip)
    assert calls == [["index", "versions", "transformers"]]
    assert json.loads(cache.read_text())["source"] == "pip index versions"

    def offline(args: list[str]) -> Any:
        raise AssertionError(f"the index was asked again: {args}")

    assert (
        releases.listing("transformers", cache, must_hold=("4.46.3", "4.57.6"), runner=offline)
        == first
    )
    # A range outside the cached listing asks the index again.
    releases.listing("transformers", cache, must_hold=("4.58.0",), runner=pip)
    assert len(calls) == 2


def test_listing_falls_back_to_pip_download(tmp_path: Path) -> None:
    def pip(args: list[str]) -> Any:
        if args[0] == "index":
            return completed(stderr="ERROR: unknown command 'index'", code=1)
        return completed(stderr=PIP_DOWNLOAD_ERROR, code=1)

    found = releases.listing("transformers", tmp_path / "v.json", runner=pip)
    assert "4.46.3" in found
    assert json.loads((tmp_path / "v.json").read_text())["source"].startswith("pip download")


def test_listing_says_why_when_the_index_is_unreachable(tmp_path: Path) -> None:
    def pip(_args: list[str]) -> Any:
        return completed(stderr="ERROR: network is unreachable", code=1)

    with pytest.raises(releases.ReleasesError, match=r"did not list transformers.*unreachable"):
        releases.listing("transformers", tmp_path / "v.json", runner=pip)


# ---------------------------------------------------------------- the bisection itself


@pytest.mark.parametrize("count", [2, 3, 5, 8, 40, 41])
def test_search_finds_every_flip_in_log_steps(count: int) -> None:
    for flip in range(1, count):

        def probe(i: int, flip: int = flip) -> str:
            return "bad" if i >= flip else "good"

        found = bisect.search(count, probe)
        assert (found.last_good, found.first_bad) == (flip - 1, flip)
        assert found.untestable == ()
        assert len(found.probes) <= max(0, (count - 2).bit_length())


def test_search_steps_around_unmeasurable_releases() -> None:
    # 0 good .. 9 bad; releases 4 and 5 cannot be installed; the flip is at 7.
    found = bisect.search(10, lambda i: "skip" if i in (4, 5) else "bad" if i >= 7 else "good")
    assert (found.last_good, found.first_bad, found.untestable) == (6, 7, ())
    assert ("skip" in {v for _, v in found.probes}) is True


def test_search_reports_a_range_when_skips_hide_the_answer() -> None:
    found = bisect.search(6, lambda i: "skip" if i in (2, 3) else "bad" if i >= 3 else "good")
    assert (found.last_good, found.first_bad, found.untestable) == (1, 4, (2, 3))


def m(
    version: str, status: str = "ok", value: float | None = None, output: Any = ((1, 2),)
) -> Measurement:
    return Measurement(
        version, status, "", value, output if status == "ok" else None, 1, False, 0.0
    )


def test_status_criterion() -> None:
    rule = bisect.criterion("status", m("a", "unsupported"), m("b", "ok"), 0.0)
    assert rule.verdict(m("x", "unsupported")) == "good"
    assert rule.verdict(m("x", "ok")) == "bad"
    # Neither end's behaviour: an import error or an install failure is skipped.
    assert rule.verdict(m("x", "error")) == "skip"
    assert rule.verdict(m("x", "install_error")) == "skip"


def test_output_criterion() -> None:
    rule = bisect.criterion("output", m("a", output=((1, 2),)), m("b", output=((1, 3),)), 0.0)
    assert rule.verdict(m("x", output=((1, 2),))) == "good"
    assert rule.verdict(m("x", output=((9, 9),))) == "bad"
    assert rule.verdict(m("x", "error")) == "skip"


def test_numeric_criterion_follows_the_direction_of_the_bad_end() -> None:
    falls = bisect.criterion("peak_mb", m("a", value=100.0), m("b", value=50.0), 0.05)
    assert falls.verdict(m("x", value=97.0)) == "good"
    assert falls.verdict(m("x", value=90.0)) == "bad"
    assert falls.verdict(m("x", value=120.0)) == "good"  # the other way is not this change
    rises = bisect.criterion("load_s", m("a", value=1.0), m("b", value=2.0), 0.1)
    assert rises.verdict(m("x", value=1.05)) == "good"
    assert rises.verdict(m("x", value=1.5)) == "bad"


@pytest.mark.parametrize(
    ("metric", "good", "bad", "fragment"),
    [
        ("status", m("a", "ok"), m("b", "ok"), "the ends agree on status"),
        ("peak_mb", m("a", value=100.0), m("b", value=103.0), "agree on peak_mb within 5%"),
        ("output", m("a"), m("b"), "the ends agree on output"),
        ("status", m("a", "install_error"), m("b"), "the good end a did not install"),
        (
            "peak_mb",
            m("a", value=1.0),
            m("b", "unsupported"),
            "the bad end b has status unsupported",
        ),
    ],
)
def test_criterion_needs_ends_that_differ(
    metric: str, good: Measurement, bad: Measurement, fragment: str
) -> None:
    with pytest.raises(bisect.Undecided, match=fragment):
        bisect.criterion(metric, good, bad, 0.05)


def test_parse_scenario_and_ends() -> None:
    assert bisect.parse_scenario("st/fp32/lcmu=false/dm=cpu", 20) == Scenario(
        False, "cpu", "float32", "safetensors", 20
    )
    assert bisect.parse_scenario("bin/bf16/lcmu=omit/dm=none", 7).id == "bin/bf16/lcmu=omit/dm=none"
    assert bisect_cmd._end("tf==4.51.0") == bisect_cmd._end("transformers==4.51.0") == "4.51.0"
    assert bisect_cmd._end("4.51.0") == "4.51.0"


# ---------------------------------------------------------------- the command, measuring faked

ARGS = [
    "--good", "tf==4.46.3", "--bad", "tf==4.57.6", "--model", "tiny-gpt2",
    "--scenario", "st/fp32/lcmu=false/dm=cpu", "--metric", "status",
]  # fmt: skip


def _seed_listing(run: Path) -> None:
    cache = run / "versions" / "transformers.json"
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({"versions": releases.parse(PIP_INDEX)}))


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--metric", "speed"], "unknown metric 'speed'"),
        (["--scenario", "st/fp32"], "bad scenario id 'st/fp32'"),
        (["--model", "gpt9"], "unknown model id 'gpt9'"),
        (["--good", "tf>=4.46"], "expected tf==VERSION"),
        (["--good", "tf==4.46.9"], "4.46.9 is not a released version"),
        (["--repeats", "0"], "--repeats: expected a positive integer"),
        (["--threshold", "-1", "--metric", "peak_mb"], "--threshold: expected a positive"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed_listing(tmp_path)
    assert bisect_cmd.main([*ARGS, "--run", str(tmp_path), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness: error: ")
    assert err.count("\n") == 1, err
    assert fragment in err


def test_main_bisects_with_measurements_faked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed_listing(tmp_path)
    probed: list[str] = []

    def fake(_spec: probe.Spec, version: str, _host: str) -> Measurement:
        probed.append(version)
        status = "ok" if tuple(map(int, version.split("."))) >= (4, 51) else "unsupported"
        return m(version, status)

    monkeypatch.setattr(bisect_cmd, "measurer", lambda spec: lambda v: fake(spec, v, "h"))
    assert bisect_cmd.main([*ARGS, "--run", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "first bad: transformers 4.51.0 (ok); last good: 4.50.3 (unsupported)" in out
    assert probed[:2] == ["4.46.3", "4.57.6"]
    summary = json.loads((tmp_path / "bisect.json").read_text())
    assert (summary["first_bad"], summary["last_good"]) == ("4.51.0", "4.50.3")
    assert [p["version"] for p in summary["probes"]] == probed[2:]


def test_main_says_when_the_ends_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _seed_listing(tmp_path)
    monkeypatch.setattr(bisect_cmd, "measurer", lambda _spec: lambda v: m(v, "ok"))
    assert bisect_cmd.main([*ARGS, "--run", str(tmp_path)]) == 1
    assert "no single answer: the ends agree on status" in capsys.readouterr().out


# ---------------------------------------------------------------- the cache


def _spec(run: Path, repeats: int = 2) -> probe.Spec:
    model = Model("tiny-gpt2", "embedded", "tiny-gpt2", ("hi",))
    stack = Stack("template", "3.11", "4.46.3", "2.13.0")
    cell = Cell(stack, model, Scenario(False, "cpu", "float32", "safetensors", 20))
    from harness.measure.runner import RunConfig

    config = RunConfig("r", run, "forkserver", 60, repeats, run / "cache")
    return probe.Spec(cell, "status", config, run / "envs")


def test_cached_records_are_reused_only_from_this_machine(tmp_path: Path) -> None:
    spec = _spec(tmp_path)
    stack = probe.probe_stack(spec.cell.stack, "4.51.0")
    assert stack.id == "tf4.51.0-torch2.13.0-py3.11"
    assert stack.transformers == "4.51.0"
    here = {"cpu": "Here", "cores": 2, "mem_total_mb": 1.0, "arch": "x86_64"}
    host = provenance.machine_fingerprint(here)
    path = tmp_path / "raw" / f"{stack.id}.jsonl"

    def add(**kw: Any) -> None:
        base = {"cell_id": spec.cell.id, "status": "ok", "repeat": 0, "machine": here}
        records.append(path, {**base, **kw})

    add(machine={"cpu": "Elsewhere"})
    add(cell_id="tiny-gpt2/st/fp32/lcmu=omit/dm=none")
    add(status="install_error", machine={})
    add(repeat=0)
    assert probe.cached(spec, stack, host) == []  # one of two repeats
    add(repeat=1, machine={**here, "gpu": "A GPU"})
    found = probe.cached(spec, stack, host)
    assert [r["repeat"] for r in found] == [0, 1]


def test_measure_reuses_the_cache_without_installing(tmp_path: Path) -> None:
    spec = _spec(tmp_path, repeats=1)
    stack = probe.probe_stack(spec.cell.stack, "4.51.0")
    here = {"cpu": "Here"}
    records.append(
        tmp_path / "raw" / f"{stack.id}.jsonl",
        {"cell_id": spec.cell.id, "status": "unsupported", "repeat": 0, "machine": here,
         "message": "device_map requires low_cpu_mem_usage=True"},
    )  # fmt: skip
    found = probe.measure(spec, "4.51.0", provenance.machine_fingerprint(here))
    assert (found.status, found.cached, found.runs) == ("unsupported", True, 1)
    assert not (tmp_path / "envs").exists()


def test_host_fingerprint_matches_what_a_worker_records() -> None:
    from harness.target import worker

    assert probe.host_fingerprint() == provenance.machine_fingerprint(
        worker.environment()["machine"]
    )


# ---------------------------------------------------------------- end to end


@pytest.mark.e2e
def test_bisect_finds_451_where_device_map_stops_needing_low_cpu_mem_usage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """transformers 4.51.0 is the first release that loads with a device_map and
    low_cpu_mem_usage=False. Before it, from_pretrained raises "Passing along a
    `device_map` requires `low_cpu_mem_usage=True`" (recorded as `unsupported`); 4.51
    pops low_cpu_mem_usage and ignores it, loading through the meta device always (see
    ../shared/FACTS.md). So on torch 2.13 CPU, tiny-gpt2, st/fp32/lcmu=false/dm=cpu,
    4.46.3 is `unsupported`, 4.57.6 is `ok`, and the status flips at 4.51.0."""
    run = tmp_path / "run"
    argv = [*ARGS, "--torch", "2.13.0", "--run", str(run), "--envdir", str(tmp_path / "envs")]
    started = time.monotonic()
    assert bisect_cmd.main(argv) == 0, capsys.readouterr().out
    first = capsys.readouterr().out
    took = time.monotonic() - started
    assert "first bad: transformers 4.51.0 (ok); last good: 4.50.3 (unsupported" in first
    summary = json.loads((run / "bisect.json").read_text())
    assert (summary["first_bad"], summary["last_good"]) == ("4.51.0", "4.50.3")
    # 40 releases from 4.46.3 to 4.57.6: the two ends and about log2(38) probes.
    assert summary["measured"] <= 9
    # The good end really ran and was refused by the library itself, with its message.
    good = [
        json.loads(x)
        for x in (run / "raw" / "tf4.46.3-torch2.13.0-py3.11.jsonl").read_text().splitlines()
    ]
    assert good[0]["status"] == "unsupported"
    assert good[0]["transformers_version"] == "4.46.3"
    assert "low_cpu_mem_usage" in good[0]["message"]
    bad = json.loads(
        (run / "raw" / "tf4.51.0-torch2.13.0-py3.11.jsonl").read_text().splitlines()[0]
    )
    assert bad["status"] == "ok"
    assert bad["torch_version"].startswith("2.13.0")
    # A re-run measures nothing: every release comes from the run folder.
    again = time.monotonic()
    assert bisect_cmd.main(argv) == 0
    second = capsys.readouterr().out
    assert "first bad: transformers 4.51.0" in second
    assert "0 measured" in second
    assert time.monotonic() - again < took / 4


def test_sweeps_read_the_cached_listing_until_refresh_asks_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path))
    calls: list[list[str]] = []

    def pip(args: list[str]) -> Any:
        calls.append(args)
        return completed(PIP_INDEX)

    listed = releases.index_listing(runner=pip)
    first = listed("transformers")
    assert listed("transformers") == first  # asked once per command
    assert len(calls) == 1
    stamp = releases.listed_at("transformers")
    assert stamp is not None

    def offline(args: list[str]) -> Any:
        raise AssertionError(f"the index was asked again: {args}")

    assert releases.index_listing(runner=offline)("transformers") == first
    time.sleep(0.01)
    assert releases.index_listing(refresh=True, runner=pip)("transformers") == first
    assert len(calls) == 2
    assert releases.listed_at("transformers") != stamp  # the new date is kept with it
