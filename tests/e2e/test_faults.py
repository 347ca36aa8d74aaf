"""The fault suite: real faults against real workers, and nothing lost or duplicated.

Every test here checks the same promise: each (cell, repeat) of the run has exactly one
record, the faulty one says what happened, and every other one is `ok`.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from harness import records as rec
from harness.config.matrix import Cell, Model, Scenario, Stack
from harness.measure import runner

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "harness" / "fixtures" / "tiny_gpt2"
PROMPTS = tuple(json.loads((FIXTURE / "manifest.json").read_text())["prompts"])


def _model(model_id: str, folder: Path | None = None) -> Model:
    if folder is None:
        return Model(id=model_id, source="embedded", location="tiny-gpt2", prompts=PROMPTS,
                     revision=None, trust_remote_code=False)  # fmt: skip
    return Model(id=model_id, source="local", location=str(folder), prompts=PROMPTS,
                 revision=None, trust_remote_code=False)  # fmt: skip


def _cells(stack: Stack, *models: Model, fmt: str = "safetensors") -> list[Cell]:
    return [Cell(stack, m, Scenario(None, None, "float32", fmt, 8)) for m in models]


def _config(tmp_path: Path, name: str, **kw: Any) -> runner.RunConfig:
    base: dict[str, Any] = {"run_id": name, "run_dir": tmp_path / name, "mode": "forkserver",
                            "timeout_s": 120.0, "repeats": 2, "cache_dir": tmp_path / "cache"}  # fmt: skip
    base.update(kw)
    return runner.RunConfig(**base)


def _keys(records: list[rec.Record]) -> list[tuple[str, int]]:
    return sorted((r["cell_id"], r["repeat"]) for r in records)


def _on_disk(cfg: runner.RunConfig) -> list[rec.Record]:
    return rec.read_run(cfg.run_dir)


def _expect_one_each(cfg: runner.RunConfig, cells: list[Cell]) -> list[rec.Record]:
    records = _on_disk(cfg)
    expected = sorted((c.id, r) for c in cells for r in range(cfg.repeats))
    assert _keys(records) == expected, "a record was lost or duplicated"
    return records


def _copy(tmp_path: Path, name: str) -> Path:
    dest = tmp_path / name
    shutil.copytree(FIXTURE / "st", dest)
    return dest


class PhaseWatcher(threading.Thread):
    """Waits for the worker to announce `phase`, then stops or kills it for real."""

    def __init__(self, phase_file: Path, phase: str, action: str) -> None:
        super().__init__(daemon=True)
        self.phase_file, self.phase, self.action = phase_file, phase, action
        self.hit: int | None = None
        self.halt = threading.Event()

    def _read(self) -> tuple[int, str] | None:
        try:
            pid, name = self.phase_file.read_text().split()
        except (OSError, ValueError):
            return None
        return int(pid), name

    def run(self) -> None:
        while not self.halt.is_set():
            seen = self._read()
            if seen and seen[1] == self.phase:
                pid = seen[0]
                os.kill(pid, signal.SIGSTOP)
                # Still in that phase once frozen: the fault lands inside it.
                if self._read() == seen:
                    if self.action == "kill":
                        os.kill(pid, signal.SIGKILL)
                    self.hit = pid
                    return
                os.kill(pid, signal.SIGCONT)
            time.sleep(0.0005)


def test_sigkill_during_from_pretrained(
    test_stack: Stack, stack_python: Path, tmp_path: Path
) -> None:
    # gpt2-124m from .bin spends long enough in from_pretrained to be caught there.
    preset = Model(id="gpt2-124m", source="preset", location="gpt2-124m", prompts=PROMPTS[:1],
                   revision=None, trust_remote_code=False)  # fmt: skip
    cells = _cells(test_stack, preset, fmt="bin")
    cfg = _config(tmp_path, "kill", repeats=4)
    watcher = PhaseWatcher(cfg.run_dir / "raw" / f"{test_stack.id}.phase", "load", "kill")
    watcher.start()
    runner.run_stack(test_stack, cells, stack_python, cfg)
    watcher.halt.set()
    assert watcher.hit is not None, "never caught the worker inside from_pretrained"
    records = _expect_one_each(cfg, cells)
    killed = [r for r in records if r["status"] == "killed"]
    assert len(killed) == 1
    assert "SIGKILL during load" in killed[0]["message"]
    assert sorted(r["status"] for r in records) == ["killed", "ok", "ok", "ok"]


def test_hang_past_the_timeout(test_stack: Stack, stack_python: Path, tmp_path: Path) -> None:
    cells = _cells(test_stack, _model("tiny-gpt2"))
    # Several repeats: the watcher needs to catch one of them inside generate.
    cfg = _config(tmp_path, "hang", repeats=4, timeout_s=20.0)
    watcher = PhaseWatcher(cfg.run_dir / "raw" / f"{test_stack.id}.phase", "generate", "stop")
    watcher.start()
    started = time.monotonic()
    runner.run_stack(test_stack, cells, stack_python, cfg)
    watcher.halt.set()
    assert watcher.hit is not None
    records = _expect_one_each(cfg, cells)
    hung = [r for r in records if r["status"] == "timeout"]
    assert len(hung) == 1
    assert "no result within 20 s during generate" in hung[0]["message"]
    assert time.monotonic() - started < 120
    assert [r["status"] for r in records if r is not hung[0]] == ["ok"] * 3
    with pytest.raises(ProcessLookupError):  # the frozen child was killed, not left behind
        os.kill(watcher.hit, 0)


def test_truncated_safetensors_and_missing_tokenizer(
    test_stack: Stack, stack_python: Path, tmp_path: Path
) -> None:
    truncated = _copy(tmp_path, "truncated")
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    no_vocab = _copy(tmp_path, "no-vocab")
    (no_vocab / "vocab.json").unlink()
    cells = _cells(test_stack, _model("truncated", truncated), _model("tiny-gpt2"),
                   _model("no-vocab", no_vocab))  # fmt: skip
    cfg = _config(tmp_path, "files", repeats=1)
    runner.run_stack(test_stack, cells, stack_python, cfg)
    by_model = {r["model"]: r for r in _expect_one_each(cfg, cells)}
    assert by_model["tiny-gpt2"]["status"] == "ok"
    assert by_model["truncated"]["status"] == "error"
    assert "safetensors" in by_model["truncated"]["message"].lower() or "Safetensor" in (
        by_model["truncated"]["traceback"] or ""
    )
    assert by_model["no-vocab"]["status"] == "error"
    assert by_model["no-vocab"]["message"]


def test_two_runs_at_the_same_time(test_stack: Stack, stack_python: Path, tmp_path: Path) -> None:
    cells = _cells(test_stack, _model("tiny-gpt2"))
    configs = [_config(tmp_path, f"run{i}", repeats=3) for i in range(2)]
    threads = [
        threading.Thread(target=runner.run_stack, args=(test_stack, cells, stack_python, c))
        for c in configs
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    for cfg in configs:
        records = _expect_one_each(cfg, cells)
        assert {r["status"] for r in records} == {"ok"}
        assert {r["run_id"] for r in records} == {cfg.run_id}


def test_import_failure_is_a_record(tmp_path: Path) -> None:
    # An interpreter that cannot import torch: the real worker fails at import time.
    stack = Stack(id="no-torch", python="3.11", transformers="5.24.0", torch="2.13.0",
                  accelerate=None, pins=(), find_links=(), index_url=None, torch_backend=None)  # fmt: skip
    cells = _cells(stack, _model("tiny-gpt2"))
    cfg = _config(tmp_path, "import", repeats=2)
    runner.run_stack(stack, cells, Path(sys.executable), cfg)
    records = _expect_one_each(cfg, cells)
    assert {r["status"] for r in records} == {"error"}
    assert all("import failed" in r["message"] and "torch" in r["message"] for r in records)


def test_ctrl_c_then_resume_runs_only_the_missing_cells(tmp_path: Path, nox_bench: Any) -> None:
    stacks = '  - {python: "3.11", transformers: "5.24.0", torch: "2.13.0", accelerate: "1.15.0"}'
    bench = nox_bench(stacks, "{repeats: 3, timeout_s: 120, max_new_tokens: 8}")
    matrix, run_dir, env, nox = bench.matrix, bench.run_dir, bench.env, bench.cmd
    proc = subprocess.Popen([*nox, "--", "--out", str(run_dir)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)  # fmt: skip
    jsonl = run_dir / "raw" / "tf5.24.0-torch2.13.0-py3.11.jsonl"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and proc.poll() is None:
        if jsonl.exists() and len(jsonl.read_text().splitlines()) >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers to the foreground process
    proc.communicate(timeout=120)
    assert proc.returncode != 0
    interrupted = rec.read_run(run_dir)
    assert 4 <= len(interrupted) < 12
    assert not list((tmp_path / "run" / "raw").glob("*.phase"))
    resumed = subprocess.run([*nox, "--", "--resume", str(run_dir)], env=env, capture_output=True,
                             text=True, timeout=900, check=False)  # fmt: skip
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    records = rec.read_run(run_dir)
    cells = subprocess.run(
        [sys.executable, "-m", "harness", "cells", "--matrix", str(matrix), "--profile", "default"],
        capture_output=True, text=True, check=True, cwd=REPO,
    ).stdout.split("\n")  # fmt: skip
    expected = sorted((line.split()[1], r) for line in cells if line for r in range(3))
    assert _keys(records) == expected  # every cell once: nothing lost, nothing twice
    assert {r["status"] for r in records} == {"ok"}
    assert {r["run_id"] for r in records} == {interrupted[0]["run_id"]}
    # The first records are untouched: resuming appends, it never rewrites.
    assert records[: len(interrupted)] == interrupted


def _budget_groups() -> set[str]:
    return {str(p) for p in Path("/sys/fs/cgroup").rglob("harness-budget-*")}


def test_memory_budget_generous_cap_and_oom_under_a_small_one(
    test_stack: Stack, stack_python: Path, tmp_path: Path
) -> None:
    before = _budget_groups()
    preset = Model(id="gpt2-355m", source="preset", location="gpt2-355m", prompts=PROMPTS[:1],
                   revision=None, trust_remote_code=False)  # fmt: skip
    tiny = _cells(test_stack, _model("tiny-gpt2"))
    roomy = _config(tmp_path, "roomy", repeats=1, mode="fresh", memory_budget=4 * 1024**3)
    runner.run_stack(test_stack, tiny, stack_python, roomy)
    (ok,) = _expect_one_each(roomy, tiny)
    assert ok["status"] == "ok"
    assert ok["budget_method"] in ("cgroup-v2", "cgroup-v1", "systemd-run", "watchdog")
    assert ok["budget_mb"] == 4096
    # 355M parameters are 1354 MiB in fp32 and 677 MiB once cast to bf16, in anonymous
    # memory the kernel cannot reclaim (clean file pages of an mmapped checkpoint it can:
    # a float32 safetensors load on 5.x survives a tight cap by re-reading the file).
    cells = [Cell(test_stack, preset, Scenario(None, None, "bfloat16", "safetensors", 8)), *tiny]
    tight = _config(tmp_path, "tight", repeats=1, mode="fresh", memory_budget=400 * 1024**2)
    runner.run_stack(test_stack, cells, stack_python, tight)
    by_model = {r["model"]: r for r in _expect_one_each(tight, cells)}
    killed = by_model["gpt2-355m"]
    assert killed["status"] == "killed", killed["message"]
    assert killed["reason"] == "memory_budget"
    assert "killed by the memory budget (400 MiB" in killed["message"]
    assert by_model["tiny-gpt2"]["status"] == "ok"  # the next cell is not affected
    assert _budget_groups() == before  # no cgroup left behind


def test_fit_finds_the_smallest_cap_of_a_real_run(
    test_stack: Stack, stack_python: Path, tmp_path: Path
) -> None:
    before = _budget_groups()
    cells = _cells(test_stack, _model("tiny-gpt2"))
    cfg = _config(tmp_path, "fit", repeats=1, mode="fresh", fit=True)
    runner.run_stack(test_stack, cells, stack_python, cfg)
    (uncapped,) = _expect_one_each(cfg, cells)
    assert uncapped["status"] == "ok"
    fit_lines = (cfg.run_dir / "fit" / f"{test_stack.id}.jsonl").read_text().splitlines()
    (found,) = [json.loads(line) for line in fit_lines]
    assert found["fit_status"] == "fit", found
    assert found["budget_method"] in ("cgroup-v2", "cgroup-v1", "systemd-run", "watchdog")
    # Each trial's time: 5x the uncapped run (seconds here), at least 60 s, at most the timeout.
    want = min(120.0, max(60.0, 5 * uncapped["wall_s"]))
    assert found["fit_probe_s"] == pytest.approx(want, abs=0.1)
    # Bisected to 5%: the smallest cap that worked sits just above one that did not.
    assert found["fit_below_mb"] < found["fit_mb"] <= found["fit_below_mb"] * 1.05 + 1
    probes = found["fit_trials"]
    assert any(p["ok"] for p in probes)
    assert not all(p["ok"] for p in probes)
    assert _budget_groups() == before


def _run_folder(tmp_path: Path, stack: Stack, python: Path, folder: Path, fmt: str) -> rec.Record:
    """One run of a model folder as a local model: its one record."""
    model = Model(folder.name, "local", str(folder), ("The lighthouse stood on",))
    cell = Cell(stack, model, Scenario(None, None, "float32", fmt, 4))
    cfg = runner.RunConfig(folder.name, tmp_path / "run", "forkserver", 300, 1, tmp_path / "c")
    (record,) = runner.run_stack(stack, [cell], python, cfg)
    return record


def test_a_malicious_pickle_never_runs_and_the_record_says_so(
    tmp_path: Path, test_stack: Stack, stack_python: Path
) -> None:
    # A real payload: unpickling this .bin opens (creates) a file. torch 2.13 has
    # weights_only, so the worker loads with it and the payload must never run.
    folder = tmp_path / "evil"
    shutil.copytree(REPO / "harness" / "fixtures" / "tiny_gpt2" / "bin", folder)
    marker = tmp_path / "pwned"
    subprocess.run([str(stack_python), str(REPO / "tests" / "data" / "evil_pickle.py"),
                    str(folder), str(marker)], check=True, timeout=300)  # fmt: skip
    # Proof that the payload is live: a plain unpickling runs it.
    code = "import sys, torch; torch.load(sys.argv[1], weights_only=False)"
    subprocess.run([str(stack_python), "-c", code, str(folder / "pytorch_model.bin")],
                   check=True, timeout=300)  # fmt: skip
    assert marker.exists()
    marker.unlink()
    record = _run_folder(tmp_path, test_stack, stack_python, folder, "bin")
    assert not marker.exists(), "the payload ran"
    assert record["status"] == "error"
    assert record["pickle_load"] == "weights_only"
    assert record["reason"] == "unsafe pickle refused by torch.load(weights_only=True)"
    assert "weights only load failed" in record["message"].lower()


def test_remote_code_is_refused_unless_declared(
    tmp_path: Path, test_stack: Stack, stack_python: Path
) -> None:
    # A real model folder whose config names custom code that would create a file on import.
    folder = tmp_path / "custom"
    shutil.copytree(REPO / "harness" / "fixtures" / "tiny_gpt2" / "st", folder)
    marker = tmp_path / "pwned"
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_evil.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    record = _run_folder(tmp_path, test_stack, stack_python, folder, "safetensors")
    assert not marker.exists(), "the custom code ran"
    assert (record["status"], record["reason"]) == ("error", "remote code refused")
    assert "trust_remote_code: true" in record["message"]
    assert record["trust_remote_code"] is False
