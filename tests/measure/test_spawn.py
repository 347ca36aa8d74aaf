"""How a worker ended (classification) and what environment it gets."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import pytest

from harness.measure import spawn


def _out(tmp_path: Path, data: dict[str, object] | None) -> Path:
    out = tmp_path / "out.json"
    if data is not None:
        out.write_text(json.dumps(data))
    return out


@pytest.mark.parametrize(
    ("exit_", "data", "status", "fragment"),
    [
        (spawn.Exit(code=0), {"status": "ok", "message": ""}, "ok", ""),
        (
            spawn.Exit(code=0),
            {"status": "unsupported", "message": "ValueError: x"},
            "unsupported",
            "ValueError",
        ),
        (spawn.Exit(code=0), {"status": "error", "message": "OSError: gone"}, "error", "OSError"),
        (spawn.Exit(timed_out=True, signal=9), None, "timeout", "no result within 5 s"),
        (spawn.Exit(signal=int(signal.SIGKILL)), None, "killed", "SIGKILL"),
        (spawn.Exit(signal=int(signal.SIGSEGV)), None, "killed", "SIGSEGV"),
        (spawn.Exit(code=1), None, "error", "exited with code 1"),
        (spawn.Exit(code=0), {"status": "weird"}, "error", "unknown status"),
    ],
)
def test_classify(tmp_path: Path, exit_: spawn.Exit, data: dict[str, object] | None,
                  status: str, fragment: str) -> None:  # fmt: skip
    got_status, message, _ = spawn.classify(exit_, _out(tmp_path, data), 5)
    assert got_status == status
    assert fragment in message


def test_classify_unreadable_result(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    out.write_text("{not json")
    assert spawn.classify(spawn.Exit(code=0), out, 5)[0] == "error"


def test_worker_env_is_an_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    env = spawn.worker_env(Path(sys.executable), hub=False)
    assert "HF_TOKEN" not in env
    assert "AWS_SECRET_ACCESS_KEY" not in env
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["TOKENIZERS_PARALLELISM"] == "false"
    assert spawn.worker_env(Path(sys.executable), hub=True)["HF_TOKEN"] == "hf_secret"
