"""Shared fixtures: the committed record folders and a factory for synthetic records."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness import envs
from harness.matrix import Stack

DATA = Path(__file__).parent / "data"
# A hand-written run: two stacks that ran, one that failed to install, an XSS message.
HANDMADE = DATA / "handmade"
# Real records: the smoke profile on four stacks, and a subset of a default-profile run.
SMOKE = DATA / "run-smoke"
DEFAULT = DATA / "run-default"
MIB = 1024 * 1024


def pytest_configure(config: pytest.Config) -> None:
    # Also listed in pyproject.toml; registering here keeps --strict-markers happy either way.
    config.addinivalue_line("markers", "browser: needs Debian chromium at /usr/bin/chromium")


def make_record(
    *,
    stack: str = "tf4.46.3-torch2.5.1-py3.11",
    tf: str | None = "4.46.3",
    torch: str | None = "2.5.1",
    accelerate: str | None = "1.1.1",
    model: str = "gpt2-124m",
    params: int = 124_000_000,
    lcmu: bool | None = None,
    dm: str | None = None,
    dtype: str = "float32",
    fmt: str = "safetensors",
    repeat: int = 0,
    status: str = "ok",
    message: str = "",
    peak: float | None = None,
    load_rss: float | None = None,
    load_peak: float | None = None,
    fingerprint: str | None = "aaaaaaaaaaaa",
    run_id: str = "20260101-000000",
    **extra: Any,
) -> dict[str, Any]:
    """A record shaped like harness.results.build_record's; memory defaults to the weights."""
    weights = params * 4 / MIB
    peak = weights if peak is None else peak
    load_rss = weights if load_rss is None else load_rss
    load_peak = load_rss if load_peak is None else load_peak
    ok = status == "ok"
    lcmu_label = "omit" if lcmu is None else str(lcmu).lower()
    scenario = f"{'st' if fmt == 'safetensors' else 'bin'}/fp32/lcmu={lcmu_label}/dm={dm or 'none'}"
    record: dict[str, Any] = {
        "schema_version": 1,
        "run_id": run_id,
        "stack_id": stack,
        "transformers_version": tf,
        "torch_version": torch,
        "accelerate_version": accelerate,
        "machine": {"cpu": "Test CPU", "cores": 2, "mem_total_mb": 2048.0} if fingerprint else {},
        "machine_fingerprint": fingerprint,
        "model": model,
        "params": params,
        "param_bytes": params * 4,
        "cell_id": f"{model}/{scenario}",
        "scenario": scenario,
        "low_cpu_mem_usage": lcmu,
        "device_map": dm,
        "dtype": dtype,
        "checkpoint_format": fmt,
        "repeat": repeat,
        "status": status,
        "message": message,
        "load_s": 0.5 if ok else None,
        "ttft_s": 0.1 if ok else None,
        "tokens_per_s": 50.0 if ok else None,
        "load_peak_mb": load_peak if ok else None,
        "peak_mb": peak if ok else None,
        "anon_mb": peak / 2 if ok else None,
        "file_mb": peak / 2 if ok else None,
        "peak_ratio": peak / weights if ok else None,
        "baseline": {"rss_mb": 500.0, "anon_mb": 400.0, "file_mb": 100.0, "hwm_mb": 500.0},
        "phases": {"load": {"rss_mb": 500.0 + load_rss, "hwm_mb": 500.0 + load_peak}} if ok else {},
    }
    record.update(extra)
    return record


def write_run(run_dir: Path, records: list[dict[str, Any]]) -> Path:
    """Records into run_dir/raw/<stack>.jsonl, as the runner lays them out."""
    raw = run_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for r in records:
        with (raw / f"{r['stack_id']}.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(r) + "\n")
    return run_dir


@pytest.fixture
def handmade_copy(tmp_path: Path) -> Path:
    """The hand-written run copied, so reports written into it stay out of tests/data."""
    target = tmp_path / "handmade"
    for path in (HANDMADE / "raw").glob("*.jsonl"):
        (target / "raw").mkdir(parents=True, exist_ok=True)
        (target / "raw" / path.name).write_bytes(path.read_bytes())
    return target


# ---------------------------------------------------------------- a real stack

WHEELHOUSE = Path("/opt/wheels")
TEST_STACK = Stack(
    id="tf5.24.0-torch2.13.0-py3.11", python="3.11", transformers="5.24.0", torch="2.13.0",
    accelerate="1.15.0", pins=(), find_links=(), index_url=None, torch_backend=None,
)  # fmt: skip


@pytest.fixture(scope="session")
def test_stack() -> Stack:
    return TEST_STACK


@pytest.fixture(scope="session")
def stack_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real uv environment with torch 2.13 (CPU, from the local wheelhouse when present)."""
    root = Path(os.environ.get("HARNESS_TEST_ENVS", str(tmp_path_factory.mktemp("envs"))))
    venv = root / TEST_STACK.id
    python = envs.venv_python(venv)
    uv = envs.find_uv()
    assert uv, "uv is a dependency of the project"
    if not python.exists():
        subprocess.run([uv, "venv", "-q", "-p", "3.11", str(venv)], check=True)
    if WHEELHOUSE.is_dir():
        os.environ.setdefault("UV_FIND_LINKS", str(WHEELHOUSE))
    result = envs.install(TEST_STACK, python, venv / "install.log")
    assert result.ok, result.message
    return python
