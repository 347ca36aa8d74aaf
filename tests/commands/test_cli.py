"""Bench options, the run summary and exit codes; the noxfile's handling of bad input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from harness import provenance, usage
from harness import records as rec
from harness.commands import bench, main
from harness.config import matrix
from harness.golden import store as golden_store
from harness.report import console

REPO = Path(__file__).resolve().parents[2]
MATRIX = matrix.load(REPO / "matrix.yaml")


def test_bench_options_parse() -> None:
    args = bench.parse_bench_args(
        ["--profile", "smoke", "--models", "tiny-gpt2", "--repeats", "2", "--out", "x"], MATRIX
    )
    assert args.profile == "smoke"
    assert args.models == ("tiny-gpt2",)
    assert args.repeats == 2
    assert args.out == Path("x")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--profile", "huge"], "unknown profile 'huge'"),
        (["--models", "gpt3"], "unknown model id 'gpt3'"),
        (["--stacks", "tf9-torch9-py3.11"], "unknown stack id"),
        (["--repeats", "0"], "positive integer"),
        (["--repeats", "two"], "positive integer"),
        (["--timeout", "-1"], "positive number"),
        (["--timeout", "nan"], "positive number"),
        (["--timeout", "inf"], "positive number"),
        (["--mode", "thread"], "invalid choice"),
        (["--bogus"], "unrecognized arguments"),
    ],
)
def test_bad_bench_options_are_usage_errors(argv: list[str], fragment: str) -> None:
    with pytest.raises(usage.UsageError, match=fragment):
        bench.parse_bench_args(argv, MATRIX)


def _record(stack: str, status: str, peak: float | None, repeat: int = 0) -> dict[str, object]:
    return {
        "stack_id": stack, "cell_id": "tiny-gpt2/st/fp32/lcmu=omit/dm=none", "repeat": repeat,
        "status": status, "message": "" if status == "ok" else "ValueError: no",
        "load_s": 0.1, "ttft_s": 0.01, "tokens_per_s": 100.0, "peak_mb": peak, "anon_mb": 1.0,
        "file_mb": 2.0, "peak_ratio": 3.0, "output_text": [" a black rock"] if status == "ok" else [],
    }  # fmt: skip


def test_summary_rows_take_medians_over_ok_repeats() -> None:
    recs = [_record("s", "ok", p, i) for i, p in enumerate([10.0, 30.0, 20.0])]
    recs.append(_record("s", "error", None, 3))
    (row,) = console.summary_rows(recs)
    assert row["runs"] == 4
    assert row["status"] == "ok/error"
    assert row["peak_mb"] == 20.0
    assert row["text"] == " a black rock"


@pytest.mark.parametrize(("statuses", "code"), [(["ok", "unsupported"], 0), (["ok", "timeout"], 1)])
def test_finish_run_exit_code(tmp_path: Path, statuses: list[str], code: int) -> None:
    for i, status in enumerate(statuses):
        rec.append(tmp_path / "raw" / "s.jsonl", _record(f"s{i}", status, 1.0))
    with (tmp_path / "out.txt").open("w") as fh:
        assert console.finish_run(tmp_path, Console(file=fh, width=200)) == code
    assert "records:" in (tmp_path / "out.txt").read_text()


def test_the_summary_counts_missing_goldens_and_shows_the_first_divergence(tmp_path: Path) -> None:
    detail = {"prompt": "Hi", "verdict": "mismatch", "position": 2, "reference_margin": 3.1,
              "candidate_margin": 2.0, "expected_id": 5, "actual_id": 9,
              "expected_token": " rock", "actual_token": " ship", "context": " a black"}  # fmt: skip
    for i, (golden, details) in enumerate(
        [("missing", []), ("missing", []), ("mismatch", [detail])]
    ):
        record = {**_record("s", "ok", 1.0, i), "golden": golden, "golden_detail": details}
        rec.append(tmp_path / "raw" / "s.jsonl", record)
    with (tmp_path / "out.txt").open("w") as fh:
        assert console.finish_run(tmp_path, Console(file=fh, width=300)) == 1
    out = (tmp_path / "out.txt").read_text()
    assert "golden: mismatch 1, missing 2" in out
    assert "warning: 2 records have no golden, so their output is not checked" in out
    assert ("'Hi': mismatch at new token 2: expected ' rock' (margin 3.1), got ' ship' "
            "(margin 2) after ' a black'") in out  # fmt: skip


def test_main_summary_and_missing_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["summary", str(tmp_path / "nope")]) == usage.USAGE_EXIT
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no such run folder" in err


def test_noxfile_rejects_a_bad_matrix_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "matrix.yaml"
    bad.write_text((REPO / "matrix.yaml").read_text().replace('torch: "2.5.1"', "torch: 2.5", 1))
    env = {**os.environ, "HARNESS_MATRIX": str(bad)}
    proc = subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(REPO / "noxfile.py"), "-l"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == usage.USAGE_EXIT
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "matrix.yaml:" in lines[0]
    assert "stacks[0].torch" in lines[0]


def test_noxfile_lists_one_bench_session_per_stack() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "nox", "-f", str(REPO / "noxfile.py"), "-l"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    names = {ln.split()[1] for ln in proc.stdout.splitlines() if ln[:2] in ("- ", "* ")}
    assert {f"bench-{s.id}" for s in MATRIX.stacks} <= names
    sessions = {"bench", "golden", "report", "compare", "bisect", "ci-workflow", "tests", "e2e",
                "lint", "fuzz"}  # fmt: skip
    assert sessions <= names


def test_python_m_harness_validate() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "validate"],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0
    assert "4 stacks" in proc.stdout


@pytest.mark.parametrize("command", [["validate"], ["cells", "--profile", "int8"]])
def test_harness_matrix_names_the_matrix_of_every_command(command: list[str]) -> None:
    # `harness cells` and `harness validate` read matrix.yaml whatever HARNESS_MATRIX said.
    env = {**os.environ, "HARNESS_MATRIX": str(REPO / "benchmarks" / "axes.yaml")}
    proc = subprocess.run(
        [sys.executable, "-m", "harness", *command],
        capture_output=True, text=True, cwd=REPO, timeout=60, check=False, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "axes.yaml: ok, 2 stacks" in proc.stdout or "llama-240m/st/fp32" in proc.stdout


def _run_json(run_dir: Path, **over: object) -> None:
    data: dict[str, object] = {
        "run_id": "20260101-000000", "profile": "smoke", "models": None, "stacks": None,
        "repeats": 1, "mode": "forkserver",
        "cells_sha256": bench.cells_sha256(MATRIX, "smoke", None, None),
        "worker_sha256": provenance.worker_sha256(),
    }  # fmt: skip
    data.update(over)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "run.json").write_text(__import__("json").dumps(data))


def test_resume_takes_the_runs_own_options(tmp_path: Path) -> None:
    _run_json(tmp_path / "run", models=["tiny-gpt2"])
    args = bench.parse_bench_args(["--resume", str(tmp_path / "run")], MATRIX)
    assert (args.profile, args.models, args.repeats) == ("smoke", ("tiny-gpt2",), 1)
    assert args.resume
    assert args.run_id == "20260101-000000"
    assert args.out == tmp_path / "run"


@pytest.mark.parametrize(
    ("argv", "over", "fragment"),
    [
        (["--profile", "full"], {}, "drop --profile"),
        ([], {"cells_sha256": "0" * 64}, "changed since run"),
        ([], {"profile": "nope"}, "cannot resume"),
        # Another worker measured it: its figures and this one's are not one measurement.
        ([], {"worker_sha256": "0123456789abcdef"}, "measured by worker 0123456789abcdef"),
        ([], {"worker_sha256": None}, "measured by worker an older harness"),
    ],
)
def test_resume_refuses_what_would_mix_cells(
    tmp_path: Path, argv: list[str], over: dict[str, object], fragment: str
) -> None:
    _run_json(tmp_path / "run", **over)
    with pytest.raises(usage.UsageError, match=fragment):
        bench.parse_bench_args(["--resume", str(tmp_path / "run"), *argv], MATRIX)


def test_resume_needs_a_run_folder(tmp_path: Path) -> None:
    with pytest.raises(usage.UsageError, match="not a run folder"):
        bench.parse_bench_args(["--resume", str(tmp_path / "nope")], MATRIX)


def test_unwritable_results_folder_is_a_usage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(usage.UsageError, match="cannot write results there"):
        bench.ensure_writable(blocker / "run")
    bench.ensure_writable(tmp_path / "ok")
    assert not list((tmp_path / "ok" / "raw").iterdir())


def test_models_takes_a_model_folder_directly(tmp_path: Path) -> None:
    folder = tmp_path / "My Model v2"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    args = bench.parse_bench_args(["--profile", "smoke", "--models", f"tiny-gpt2,{folder}"], MATRIX)
    assert args.models == ("tiny-gpt2", "My-Model-v2")
    assert args.folders == (folder,)
    cells = bench.select(MATRIX, args)
    mine = [c for c in cells if c.model.id == "My-Model-v2"]
    assert mine
    assert {(c.model.source, c.model.location) for c in mine} == {("local", str(folder))}
    # The smoke profile's scenarios, on every stack, as for the matrix's own models.
    assert len(mine) == len([c for c in cells if c.model.id == "tiny-gpt2"])


def test_a_folder_without_config_json_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(usage.UsageError, match=r"not a model folder \(no config\.json"):
        bench.parse_bench_args(["--models", str(tmp_path)], MATRIX)
    assert main(["bench", "--models", str(tmp_path / "nope") + "/"]) == usage.USAGE_EXIT


@pytest.mark.parametrize("name", ["...", "..x", "a b/c", "-rf", "ünï©ødé"])
def test_a_folders_id_never_leaves_the_folders_it_names(tmp_path: Path, name: str) -> None:
    # Model ids become file names (goldens/<model>/..., the preset cache): a folder's id is
    # a plain id, so no "../" or absolute path can reach outside them.
    folder = tmp_path / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (model,) = bench.folder_models(MATRIX, [folder])
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", model.id), model.id
    root = tmp_path / "goldens"
    path = golden_store.CaseKey(model.id, "../../p", "float32", 4).path(root)
    assert path.resolve().is_relative_to(root.resolve())
