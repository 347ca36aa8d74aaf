"""harness.decide.changepoints: steps along release series and run histories.

The detector's unit tests use synthetic series with a fixed list of seeds; the cell-level tests
use the committed records (tests/data/compare/walk: known steps; tests/data/run-default: a
real run) and a hand-made sweep shaped like the known 4.51 steps (tests/recordkit.py).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from recordkit import DEFAULT, make_record, write_run

from harness import records as rec
from harness.commands import bisect as bisect_cmd
from harness.commands import compare as compare_cmd
from harness.config import ids
from harness.decide import changepoints
from harness.measure.probe import Measurement

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from harness.decide.changepoints import ChangePoint
    from harness.records import Record

WALK = DEFAULT.parent / "compare" / "walk"
TRUTH = DEFAULT.parent / "sweep-truth"  # a real sweep of 4.48-4.53 on gpt2-124m
A, B, C = "tf4.46.3-torch2.5.1-py3.11", "tf4.57.6-torch2.8.0-py3.11", "tf5.24.0-torch2.13.0-py3.11"
NO_MATRIX = ["--matrix", "/nonexistent/matrix.yaml"]
SEEDS = tuple(range(30))
# A sweep of transformers on one torch, latest patch per minor.
SWEEP = ("4.48.3", "4.49.0", "4.50.3", "4.51.3", "4.52.4", "4.53.3")
DEFAULT_PATH = "gpt2-124m/st/fp32/lcmu=omit/dm=none"
REFUSED = "gpt2-124m/st/fp32/lcmu=false/dm=cpu"


def series(levels: Sequence[float], *, sd: float, repeats: int, seed: int) -> list[tuple[str, list[float]]]:  # fmt: skip
    """One point per level, `repeats` values each with relative Gaussian noise `sd`."""
    rng = np.random.default_rng(seed)
    return [
        (f"x{i}", [float(v) for v in level * (1 + sd * rng.standard_normal(repeats))])
        for i, level in enumerate(levels)
    ]


def one(points: Sequence[ChangePoint], cell: str, metric: str) -> ChangePoint:
    found = [p for p in points if p.cell == cell and p.metric == metric]
    assert len(found) == 1, (cell, metric, found)
    return found[0]


# ---------------------------------------------------------------- the detector


@pytest.mark.parametrize("seed", SEEDS[:5])
def test_a_clear_step_is_found_where_it_is_with_the_truth_in_its_interval(seed: int) -> None:
    points = series([1000.0] * 4 + [600.0] * 4, sd=0.01, repeats=5, seed=seed)
    (shift,) = changepoints.detect(points, "peak_mb", floor=1.0)
    assert (shift.index, shift.previous, shift.first) == (4, "x3", "x4")
    assert shift.estimate.low is not None
    assert shift.estimate.high is not None
    assert shift.estimate.low <= -0.4 <= shift.estimate.high
    assert shift.estimate.change == pytest.approx(-0.4, abs=0.02)
    assert shift.verdict == "better"  # memory: lower is better


def test_the_direction_follows_the_registry() -> None:
    up = series([50.0] * 3 + [80.0] * 3, sd=0.01, repeats=4, seed=1)
    down = series([80.0] * 3 + [50.0] * 3, sd=0.01, repeats=4, seed=1)
    assert [s.verdict for s in changepoints.detect(up, "tokens_per_s")] == ["better"]
    assert [s.verdict for s in changepoints.detect(down, "tokens_per_s")] == ["worse"]
    assert [s.verdict for s in changepoints.detect(up, "load_s")] == ["worse"]


def test_two_steps_are_both_found() -> None:
    points = series([100.0] * 3 + [200.0] * 3 + [100.0] * 3, sd=0.01, repeats=3, seed=7)
    shifts = changepoints.detect(points, "anon_mb", floor=1.0)
    assert [s.first for s in shifts] == ["x3", "x6"]
    assert [s.verdict for s in shifts] == ["worse", "better"]


@pytest.mark.parametrize(
    ("metric", "sd"),
    [("peak_mb", 0.01), ("anon_mb", 0.015), ("load_s", 0.03), ("tokens_per_s", 0.03)],
)
def test_noise_within_the_threshold_is_never_a_step(metric: str, sd: float) -> None:
    # sd well inside compare's thresholds (memory 5%, time 10%): no seed may give a step.
    for seed in SEEDS:
        points = series([500.0] * 6, sd=sd, repeats=3, seed=seed)
        assert changepoints.detect(points, metric, floor=1.0) == [], seed


def test_a_step_smaller_than_the_floor_is_not_a_step() -> None:
    # +0.8 MiB on 10 MiB is +8%, but below the 1 MiB a memory move must reach at all.
    points = series([10.0] * 3 + [10.8] * 3, sd=0.0, repeats=4, seed=0)
    assert changepoints.detect(points, "anon_mb", floor=1.0) == []
    assert len(changepoints.detect(points, "anon_mb", floor=0.0)) == 1


def test_one_release_or_none_gives_nothing() -> None:
    assert changepoints.detect([("x0", [1.0, 2.0, 3.0])], "peak_mb") == []
    assert changepoints.detect([], "peak_mb") == []
    # A release without values (it failed) is left out, not read as zero.
    assert changepoints.detect([("x0", [5.0] * 3), ("x1", [])], "peak_mb") == []


def test_a_run_history_of_one_value_per_run_is_judged_by_its_segments() -> None:
    # Ten runs, one median each: segments of five runs give the repeats a verdict needs.
    rng = np.random.default_rng(3)
    values = [200.0] * 6 + [260.0] * 4
    points = [
        (f"run-{i:02d}", [v * (1 + 0.005 * rng.standard_normal())]) for i, v in enumerate(values)
    ]
    (shift,) = changepoints.detect(points, "load_peak_mb", floor=1.0)
    assert (shift.previous, shift.first) == ("run-05", "run-06")
    assert shift.estimate.change == pytest.approx(0.3, abs=0.02)
    assert (shift.estimate.n_base, shift.estimate.n_candidate) == (6, 4)


# ---------------------------------------------------------------- cells of committed runs


def test_the_walk_fixture_steps_at_the_releases_it_was_made_with() -> None:
    found = changepoints.detect_all(rec.read_run(WALK))
    peak = one(found, "gpt2-355m/st/fp32/lcmu=omit/dm=none", "peak_mb")
    assert (peak.previous_release, peak.first_release, peak.direction) == (A, B, "better")
    assert peak.change == pytest.approx(-0.48, abs=0.005)
    assert peak.change is not None
    assert peak.low is not None
    assert peak.high is not None
    assert peak.low <= peak.change <= peak.high
    assert (peak.before, peak.after, peak.unit) == (1450.0, 754.5, "MiB")
    assert peak.delta == pytest.approx(-695.5)
    up = one(found, "gpt2-124m/st/fp32/lcmu=true/dm=none", "peak_mb")
    assert (up.previous_release, up.first_release, up.direction) == (B, C, "worse")
    # The bin cell's load time moves 15% with overlapping repeats: noise, not a step.
    assert not [p for p in found if p.cell == "tiny-gpt2/bin/fp32/lcmu=omit/dm=none"]


def test_a_status_step() -> None:
    found = changepoints.detect_all(rec.read_run(WALK))
    step = one(found, "tiny-gpt2/st/fp32/lcmu=false/dm=cpu", "status")
    assert (step.before, step.after, step.direction, step.category) == (
        "unsupported",
        "ok",
        "better",
        "status",
    )
    assert (step.previous_release, step.first_release) == (A, B)
    assert changepoints.sentence(step) == (
        f"status of tiny-gpt2/st/fp32/lcmu=false/dm=cpu steps from unsupported to ok (better) "
        f"at {B} (after {A})"
    )


def test_a_golden_step() -> None:
    found = changepoints.detect_all(rec.read_run(WALK))
    step = one(found, "tiny-gpt2/st/fp32/lcmu=omit/dm=none", "golden")
    assert (step.before, step.after, step.direction) == ("match", "mismatch", "worse")
    assert (step.previous_release, step.first_release) == (B, C)
    # No golden there (missing): a near-tie flip is compare's to judge, not a golden step.
    assert not [p for p in found if p.cell == "tiny-gpt2/st/fp32/lcmu=true/dm=none"]


def test_a_real_run_finds_where_device_map_cpu_stops_being_refused() -> None:
    found = changepoints.detect_all(rec.read_run(DEFAULT))
    step = one(found, REFUSED, "status")
    assert (step.before, step.after) == ("unsupported", "ok")
    assert step.first_release == "tf4.57.6-torch2.8.0-py3.11"
    assert step.first_versions == ids.StackVersions("4.57.6", "2.8.0", "3.11")
    assert step.axis == ""  # transformers and torch both change: stacks are named whole


def test_a_single_stack_has_no_change_points() -> None:
    records = [r for r in rec.read_run(WALK) if r["stack_id"] == A]
    assert records
    assert changepoints.detect_all(records) == []


# ---------------------------------------------------------------- a sweep shaped like 4.51's


def sweep(tmp_path: Path) -> Path:
    """Six releases on torch 2.13.0, three repeats: device_map=cpu without low_cpu_mem_usage
    refused before 4.51, the default path's peak 2x the weights before 4.51 and 1x after."""
    weights = 124_000_000 * 4 / 2**20
    out: list[Record] = []
    for tf in SWEEP:
        after = tuple(map(int, tf.split("."))) >= (4, 51)
        stack = ids.stack_id(tf, "2.13.0", "3.11")
        for repeat, jitter in enumerate((0.0, 2.0, -1.5)):
            kw: dict[str, Any] = {"stack": stack, "tf": tf, "torch": "2.13.0+cpu", "repeat": repeat}
            peak = weights * (1.0 if after else 2.0) + 60 + jitter
            out.append(make_record(**kw, peak=peak))
            out.append(
                make_record(**kw, lcmu=False, dm="cpu", status="ok" if after else "unsupported")
            )
    return write_run(tmp_path / "sweep", out)


def test_the_4_51_steps_of_a_sweep_are_named_by_release(tmp_path: Path) -> None:
    found = changepoints.detect_all(rec.read_run(sweep(tmp_path)))
    status = one(found, REFUSED, "status")
    assert changepoints.where(status) == "transformers 4.51.3 (after 4.50.3)"
    peak = one(found, DEFAULT_PATH, "peak_mb")
    assert changepoints.where(peak) == "transformers 4.51.3 (after 4.50.3)"
    assert peak.n_before == peak.n_after == 9
    ratio = one(found, DEFAULT_PATH, "peak_ratio")
    assert isinstance(ratio.before, float)
    assert isinstance(ratio.after, float)
    assert ratio.before == pytest.approx(2.13, abs=0.02)
    assert ratio.after == pytest.approx(1.13, abs=0.02)
    sentence = changepoints.sentence(peak)
    assert sentence.startswith(f"peak_mb of {DEFAULT_PATH} steps down 47% [")
    assert sentence.endswith("better) at transformers 4.51.3 (after 4.50.3)")


def test_numbers_of_two_machines_are_not_pooled() -> None:
    records = [
        make_record(stack=ids.stack_id(tf, "2.13.0", "3.11"), tf=tf, torch="2.13.0", repeat=r,
                    fingerprint=fp, peak=(250.0 if fp == "a" and tf < "4.50" else 500.0) + r)
        for tf in SWEEP[:4] for fp in ("a", "b") for r in range(3)
    ]  # fmt: skip
    found = [p for p in changepoints.detect_all(records) if p.metric == "peak_mb"]
    assert [(p.machine, p.first_release) for p in found] == [("a", "tf4.50.3-torch2.13.0-py3.11")]


# ---------------------------------------------------------------- compare --walk


def test_the_walk_names_each_change_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out, md = tmp_path / "walk.json", tmp_path / "walk.md"
    argv = ["--walk", "--run", str(WALK), "--json", str(out), "--markdown", str(md), *NO_MATRIX]
    assert compare_cmd.main(argv) == 0
    printed = capsys.readouterr().out
    data = json.loads(out.read_text())
    sentences = [p["sentence"] for p in data["change_points"]]
    expected = (
        "peak_mb of gpt2-355m/st/fp32/lcmu=omit/dm=none steps down 48% [48%, 48%] "
        f"(1450.0 MiB -> 754.5 MiB, better) at {B} (after {A})"
    )
    assert expected in sentences
    assert f"change point: {expected}" in printed
    # After the walk's own lines, which are unchanged.
    assert printed.index("change point:") > printed.index("further changes are uncertain")
    assert "### Change points" in md.read_text()
    assert {p["metric"] for p in data["change_points"]} == {
        "peak_mb",
        "anon_mb",
        "status",
        "golden",
    }


def test_the_walk_narrows_change_points_with_metrics(tmp_path: Path) -> None:
    out = tmp_path / "walk.json"
    argv = ["--walk", "--run", str(WALK), "--metrics", "status", "--json", str(out), *NO_MATRIX]
    assert compare_cmd.main(argv) == 0
    assert [p["metric"] for p in json.loads(out.read_text())["change_points"]] == ["status"]


# ---------------------------------------------------------------- bisect --from-step


def _from_step(run: Path, *argv: str) -> list[str]:
    return ["--from-step", str(run), "--run", str(run / "bisect"), *argv]


@pytest.mark.parametrize(
    ("metric", "scenario", "good", "bad"),
    [
        ("status", "st/fp32/lcmu=false/dm=cpu", "4.50.3", "4.51.3"),
        ("peak_mb", "st/fp32/lcmu=omit/dm=none", "4.50.3", "4.51.3"),
    ],
)
def test_from_step_takes_its_ends_from_the_step(
    tmp_path: Path, metric: str, scenario: str, good: str, bad: str
) -> None:
    argv = _from_step(
        sweep(tmp_path), "--model", "gpt2-124m", "--scenario", scenario, "--metric", metric
    )
    ns = bisect_cmd.parser().parse_args(argv)
    _, plan = bisect_cmd.build(ns)
    assert (plan.good, plan.bad, plan.torch, plan.python, plan.metric) == (
        good,
        bad,
        "2.13.0",
        "3.11",
        metric,
    )
    assert plan.cell_id == f"gpt2-124m/{scenario}"


def test_from_step_bisects_between_the_step_s_releases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run = sweep(tmp_path)
    cache = run / "bisect" / "versions" / "transformers.json"
    cache.parent.mkdir(parents=True)
    cache.write_text(json.dumps({"versions": ["4.50.3", "4.51.0", "4.51.1", "4.51.2", "4.51.3"]}))

    def fake(version: str) -> Measurement:
        ok = tuple(map(int, version.split("."))) >= (4, 51, 1)
        return Measurement(version, "ok" if ok else "unsupported", "", None, None, 1, False, 0.0)

    monkeypatch.setattr(bisect_cmd, "measurer", lambda _spec: fake)
    argv = _from_step(
        run, "--model", "gpt2-124m", "--scenario", "st/fp32/lcmu=false/dm=cpu", "--metric", "status"
    )
    assert bisect_cmd.main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("from the step: status of gpt2-124m/st/fp32/lcmu=false/dm=cpu")
    assert "first bad: transformers 4.51.1 (ok); last good: 4.51.0 (unsupported)" in printed


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--model", "gpt9"], "no records of model 'gpt9' (models: gpt2-124m)"),
        (["--scenario", "st/fp32/lcmu=true/dm=auto"], "no records of gpt2-124m in scenario"),
        (["--metric", "speed"], "unknown metric 'speed'"),
        (["--metric", "load_s"], "no load_s step of gpt2-124m/st/fp32/lcmu=false/dm=cpu"),
        (["--good", "tf==4.50.3"], "--from-step takes no --good/--bad"),
    ],
)
def test_from_step_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--model", "gpt2-124m", "--scenario", "st/fp32/lcmu=false/dm=cpu", "--metric", "status"]
    assert bisect_cmd.main([*_from_step(sweep(tmp_path), *base), *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert fragment in err


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--from-step", "/nonexistent/run"], "/nonexistent/run: not a run folder"),
        (["--from-step", str(DEFAULT)], "changes torch or python as well"),
        ([], "expected --good and --bad (tf==VERSION), or --from-step RUN_DIR"),
    ],
)
def test_from_step_needs_a_run_whose_step_keeps_torch(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["--model", "gpt2-124m", "--scenario", "st/fp32/lcmu=false/dm=cpu", "--metric", "status"]
    assert bisect_cmd.main([*base, *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert fragment in err


def test_the_known_steps_of_a_real_4_48_to_4_53_sweep_are_at_4_51() -> None:
    """Real records (benchmarks/sweep-truth.yaml, 3 repeats per release, torch 2.13.0 CPU):
    FACTS.md's two loader changes of 4.51, found by the detector at the 4.51 release."""
    records = rec.read_run(TRUTH)
    assert sorted({str(r["transformers_version"]) for r in records}) == list(SWEEP)
    found = changepoints.detect_all(records)
    status = one(found, REFUSED, "status")
    assert (status.before, status.after) == ("unsupported", "ok")
    assert (status.previous_versions, status.first_versions) == (
        ids.StackVersions("4.50.3", "2.13.0", "3.11"),
        ids.StackVersions("4.51.3", "2.13.0", "3.11"),
    )
    ratio = one(found, DEFAULT_PATH, "peak_ratio")
    assert ratio.first_versions is not None
    assert ratio.first_versions.transformers == "4.51.3"
    assert isinstance(ratio.before, float)
    assert isinstance(ratio.after, float)
    assert 1.8 < ratio.before < 2.2  # about twice the weights
    assert 0.9 < ratio.after < 1.3  # about once
    assert ratio.direction == "better"
    # Nothing else about peak memory on the default path steps anywhere in the sweep.
    assert [cp.first_versions for cp in found if cp.cell == DEFAULT_PATH and cp.metric == "peak_mb"] == [ratio.first_versions]  # fmt: skip
