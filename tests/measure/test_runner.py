"""run_stack against a real worker process that cannot import torch."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from harness.config.matrix import Cell, Model, Scenario, Stack
from harness.measure import runner

STACK = Stack(
    id="host-python", python="3.11", transformers="4.46.3", torch="2.5.1", accelerate=None,
    pins=(), find_links=(), index_url=None, torch_backend=None,
)  # fmt: skip
MODEL = Model(id="tiny-gpt2", source="embedded", location="tiny-gpt2", prompts=("Hi",),
              revision=None, trust_remote_code=False)  # fmt: skip
SCENARIO = Scenario(low_cpu_mem_usage=None, device_map=None, dtype="float32",
                    checkpoint_format="safetensors", max_new_tokens=3)  # fmt: skip


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
