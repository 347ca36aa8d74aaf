"""End-to-end: `nox -s bench` on real stacks (torch 2.13 CPU, two transformers versions).

These install real environments with uv (from its cache or the package registry) and run
real workers on the embedded tiny-gpt2. Model files never come from a hub: the workers
run with HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from harness import records as rec

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
GOOD_STACKS = """\
  - {python: "3.11", transformers: "4.57.6", torch: "2.13.0"}
  - {python: "3.11", transformers: "5.24.0", torch: "2.13.0"}
"""
BAD_STACK = """\
  - {python: "3.11", transformers: "4.999.0", torch: "2.13.0", id: does-not-exist}
"""
SETTINGS = "{repeats: 2, timeout_s: 300, max_new_tokens: 12}"


def _bench(
    nox_bench: Any, stacks: str, *extra: str
) -> tuple[subprocess.CompletedProcess[str], Path]:
    bench = nox_bench(stacks, SETTINGS)
    proc = subprocess.run([*bench.cmd, "--", "--out", str(bench.run_dir), *extra],
                          capture_output=True, text=True, env=bench.env, timeout=1800,
                          check=False)  # fmt: skip
    return proc, bench.run_dir


def number(value: float | None) -> float:
    assert value is not None
    return value


def test_two_real_stacks_measure_tiny_gpt2(nox_bench: Any) -> None:
    proc, run_dir = _bench(nox_bench, GOOD_STACKS, "--profile", "default")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = rec.read_run(run_dir)
    # 2 stacks x 4 scenarios x 2 repeats, one record each, no more
    assert len(records) == 16
    assert {r["status"] for r in records} == {"ok"}
    assert {r["transformers_version"] for r in records} == {"4.57.6", "5.24.0"}
    assert all(str(r["torch_version"]).startswith("2.13.0") for r in records)
    for r in records:
        assert r["schema_version"] == rec.SCHEMA_VERSION
        assert number(r["params"]) > 100_000
        assert r["param_bytes"] == 4 * number(r["params"])
        assert number(r["peak_mb"]) > 0
        # The weights must be somewhere: at least ~1x their size, and not absurdly more.
        assert 0.5 < number(r["peak_ratio"]) < 50, r["peak_ratio"]
        assert number(r["load_s"]) > 0
        assert number(r["ttft_s"]) > 0
        assert number(r["tokens_per_s"]) > 0
        assert all(text.strip() for text in r["output_text"])
        assert all(len(ids) == 12 for ids in r["output_ids"])
        assert all(len(m) == 12 for m in r["margins"])
        assert r["memory_method"] == "clear_refs"
        # Schema 2: what ran and under which conditions, read inside the stack.
        assert r["attn_implementation"] in ("sdpa", "eager"), r["attn_implementation"]
        assert number(r["load_cpu_s"]) > 0
        assert number(r["generate_cpu_s"]) > 0
        assert number(r["warm_tokens_per_s"]) > 0
        assert r["threads"] == len(os.sched_getaffinity(0))
        assert all(len(ids) > 0 for ids in r["input_ids"])
        assert all(len(u) == 12 for u in r["runner_up"])
        assert [len(t) for t in r["output_tokens"]] == [len(i) for i in r["output_ids"]]
        # Pickle checkpoints are loaded restricted; safetensors need no guard.
        expected = "weights_only" if r["checkpoint_format"] == "bin" else None
        assert r["pickle_load"] == expected
    # Greedy text of a trained model is the same on both versions.
    texts = {tuple(r["output_text"]) for r in records}
    assert len(texts) == 1, texts
    # The dtype keyword follows the version: torch_dtype before 4.56, dtype after.
    kw = {r["transformers_version"]: set(r["load_kwargs"] or {}) for r in records}
    for version in ("4.57.6", "5.24.0"):
        assert "dtype" in kw[version]
        assert "torch_dtype" not in kw[version]
    # The frozen package lists and the summary are there.
    for stack in ("tf4.57.6-torch2.13.0-py3.11", "tf5.24.0-torch2.13.0-py3.11"):
        assert "transformers==" in (run_dir / "raw" / f"{stack}.freeze.txt").read_text()
    assert "records: ok 16" in proc.stdout


def test_a_stack_that_cannot_install_does_not_stop_the_other(nox_bench: Any) -> None:
    stacks = BAD_STACK + GOOD_STACKS.splitlines(keepends=True)[1]
    proc, run_dir = _bench(nox_bench, stacks, "--profile", "smoke")
    # Install errors fail the run, but only after the good stack has finished.
    assert proc.returncode != 0
    records = rec.read_run(run_dir)
    by_stack: dict[str, set[str]] = {}
    for r in records:
        by_stack.setdefault(r["stack_id"], set()).add(r["status"])
    assert by_stack == {"does-not-exist": {"install_error"}, "tf5.24.0-torch2.13.0-py3.11": {"ok"}}
    bad = next(r for r in records if r["status"] == "install_error")
    assert "4.999.0" in bad["message"]
    assert len(records) == 2 * 4  # smoke: 1 repeat x 4 scenarios per stack


def test_existing_environment_stack_with_nox_and_without(
    stack_python: Path, tmp_path: Path, nox_bench: Any
) -> None:
    # An interpreter that already has torch and transformers: nothing is installed.
    stacks = f'  - {{id: existing, python: "{stack_python}", install: false}}\n'
    proc, run_dir = _bench(nox_bench, stacks, "--profile", "smoke")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = rec.read_run(run_dir)
    assert len(records) == 4
    assert {r["status"] for r in records} == {"ok"}
    assert {r["stack_id"] for r in records} == {"existing"}
    # The versions come from the environment itself, not from matrix.yaml.
    assert {r["transformers_version"] for r in records} == {"5.24.0"}
    assert not (run_dir / "raw" / "existing.install.log").exists()
    # The same without nox, as on a machine that has no nox or uv (python -m harness bench).
    out = tmp_path / "plain"
    plain = subprocess.run(
        [sys.executable, "-m", "harness", "bench", "--matrix", str(tmp_path / "matrix.yaml"),
         "--profile", "smoke", "--out", str(out)],
        capture_output=True, text=True, cwd=REPO, timeout=900, check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert plain.returncode == 0, plain.stdout[-3000:] + plain.stderr[-3000:]
    again = rec.read_run(out)
    assert [r["status"] for r in again] == ["ok"] * 4
    assert "records: ok 4" in plain.stdout


def test_interleaved_stacks_take_turns(stack_python: Path, nox_bench: Any) -> None:
    # Two stacks (one environment under two ids, as an A/A run has them): with --interleave
    # one run of each goes in turn, so drift of the machine falls on both alike.
    stacks = "".join(f'  - {{id: {name}, python: "{stack_python}", install: false}}\n'
                     for name in ("aa", "bb"))  # fmt: skip
    proc, run_dir = _bench(nox_bench, stacks, "--profile", "smoke", "--repeats", "2",
                           "--interleave")  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = sorted(rec.read_run(run_dir), key=lambda r: float(r["started_at"] or 0))
    assert len(records) == 2 * 4 * 2
    assert [r["stack_id"] for r in records] == ["aa", "bb"] * 8
    # Repeats round-robin too: every cell's first repeat before any second one.
    assert [r["repeat"] for r in records] == [0] * 8 + [1] * 8
    assert {r["threads"] for r in records} == {len(os.sched_getaffinity(0))}


def test_a_run_whose_only_stack_cannot_install_still_reports(nox_bench: Any) -> None:
    # Every record failed: the report once raised "boolean value of NA is ambiguous".
    proc, run_dir = _bench(nox_bench, BAD_STACK, "--profile", "smoke")
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "install_error" in proc.stdout
    assert (run_dir / "index.html").is_file()
    assert "install_error" in (run_dir / "summary.md").read_text(encoding="utf-8")
