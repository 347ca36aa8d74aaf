"""Failure classification, and a real worker process that cannot import torch."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from harness import runner, workers
from harness.matrix import Cell, Model, Scenario, Stack

STACK = Stack(
    id="host-python", python="3.11", transformers="4.46.3", torch="2.5.1", accelerate=None,
    pins=(), find_links=(), index_url=None, torch_backend=None,
)  # fmt: skip
MODEL = Model(id="tiny-gpt2", source="embedded", location="tiny-gpt2", prompts=("Hi",),
              revision=None, trust_remote_code=False)  # fmt: skip
SCENARIO = Scenario(low_cpu_mem_usage=None, device_map=None, dtype="float32",
                    checkpoint_format="safetensors", max_new_tokens=3)  # fmt: skip


def _out(tmp_path: Path, data: dict[str, object] | None) -> Path:
    out = tmp_path / "out.json"
    if data is not None:
        out.write_text(json.dumps(data))
    return out


@pytest.mark.parametrize(
    ("exit_", "data", "status", "fragment"),
    [
        (workers.Exit(code=0), {"status": "ok", "message": ""}, "ok", ""),
        (
            workers.Exit(code=0),
            {"status": "unsupported", "message": "ValueError: x"},
            "unsupported",
            "ValueError",
        ),
        (workers.Exit(code=0), {"status": "error", "message": "OSError: gone"}, "error", "OSError"),
        (workers.Exit(timed_out=True, signal=9), None, "timeout", "no result within 5 s"),
        (workers.Exit(signal=int(signal.SIGKILL)), None, "killed", "SIGKILL"),
        (workers.Exit(signal=int(signal.SIGSEGV)), None, "killed", "SIGSEGV"),
        (workers.Exit(code=1), None, "error", "exited with code 1"),
        (workers.Exit(code=0), {"status": "weird"}, "error", "unknown status"),
    ],
)
def test_classify(tmp_path: Path, exit_: workers.Exit, data: dict[str, object] | None,
                  status: str, fragment: str) -> None:  # fmt: skip
    got_status, message, _ = workers.classify(exit_, _out(tmp_path, data), 5)
    assert got_status == status
    assert fragment in message


def test_classify_unreadable_result(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    out.write_text("{not json")
    assert workers.classify(workers.Exit(code=0), out, 5)[0] == "error"


def test_worker_env_is_an_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    env = workers.worker_env(Path(sys.executable), hub=False)
    assert "HF_TOKEN" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["TOKENIZERS_PARALLELISM"] == "false"
    assert workers.worker_env(Path(sys.executable), hub=True)["HF_TOKEN"] == "hf_secret"


@pytest.mark.parametrize("mode", ["forkserver", "fresh"])
def test_stack_without_torch_gives_error_records_not_a_crash(tmp_path: Path, mode: str) -> None:
    # The host interpreter has no torch: a real worker process fails to import it.
    pytest.importorskip("yaml")
    if _has_torch():
        pytest.skip("the host interpreter has torch")
    cfg = runner.RunConfig(run_id="r", run_dir=tmp_path, mode=mode, timeout_s=60, repeats=2,
                           cache_dir=tmp_path / "cache")  # fmt: skip
    cells = [Cell(stack=STACK, model=MODEL, scenario=SCENARIO)]
    records = runner.run_stack(STACK, cells, Path(sys.executable), cfg)
    assert [r["repeat"] for r in records] == [0, 1]
    assert {r["status"] for r in records} == {"error"}
    assert all("torch" in r["message"] for r in records)
    lines = (tmp_path / "raw" / "host-python.jsonl").read_text().splitlines()
    assert len(lines) == 2
    freeze = (tmp_path / "raw" / "host-python.freeze.txt").read_text()
    assert "PyYAML==" in freeze or "pyyaml==" in freeze.lower()


def _has_torch() -> bool:
    import importlib.util

    return importlib.util.find_spec("torch") is not None
