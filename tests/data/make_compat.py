"""Writes tests/data/compat: every state the compatibility page shows, from real records.

    python tests/data/make_compat.py

tiny-gpt2's records of tests/data/run-default (first repeat; two for tf5.24.0), edited:
- tf4.57.6-torch2.8.0-py3.11: as run, every scenario ok;
- tf5.5.4-torch2.5.1-py3.11: the scenario it refused raises instead, with a hostile message;
- tf5.24.0-torch2.13.0-py3.11: one repeat's output changed (a golden mismatch);
- tf5.24.0-torch2.13.0-py3.12: failed to install, as harness.records.install_error_records
  writes it, so one grid cell holds two stacks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from harness import records as rec
from harness.config import ids
from harness.config.matrix import Cell, Model, Scenario, Stack

DATA = Path(__file__).parent
HERE = DATA / "compat"
SOURCE = DATA / "run-default" / "raw"
MODEL = "tiny-gpt2"
HOSTILE = "RuntimeError: <script>alert(\"x\")</script> can't load 'it' & more"
INSTALL = "uv pip install failed: No solution found when resolving: torch==2.13.0 (py3.12)"


def _records(stack: str, repeats: int) -> list[dict[str, object]]:
    lines = (SOURCE / f"{stack}.jsonl").read_text(encoding="utf-8").splitlines()
    found = [json.loads(line) for line in lines]
    return [r for r in found if r["model"] == MODEL and r["repeat"] < repeats]


def _error(records: list[dict[str, object]]) -> list[dict[str, object]]:
    bad = records[1]  # bin/fp32, which this stack refused: an error instead
    bad.update(status="error", message=HOSTILE, traceback="Traceback ...\n" + HOSTILE,
               golden=None, golden_detail=[])  # fmt: skip
    return records


def _mismatch(records: list[dict[str, object]]) -> list[dict[str, object]]:
    changed = next(r for r in records if r["repeat"] == 1)
    changed["golden"] = "mismatch"
    changed["golden_detail"] = [{
        "prompt": "The capital of France is", "verdict": "mismatch", "position": 3,
        "expected_id": 262, "actual_id": 257, "expected_token": " the",
        "actual_token": " a", "reference_margin": 2.5, "candidate_margin": 1.75,
        "expected_text": " Paris, the", "actual_text": " Paris, a", "context": " Paris,",
    }]  # fmt: skip
    return records


def _install_error(like: list[dict[str, object]]) -> list[rec.Record]:
    named = ids.parse_stack_id("tf5.24.0-torch2.13.0-py3.12")
    assert named is not None
    stack = Stack(ids.stack_id(named.transformers, named.torch, named.python), named.python,
                  named.transformers, named.torch)  # fmt: skip
    model = Model(MODEL, "preset", "tiny-gpt2", ("The capital of France is",))
    cells = []
    for r in like:
        axes = ids.parse_scenario_id(str(r["scenario"]))
        scenario = Scenario(axes.low_cpu_mem_usage, axes.device_map, axes.dtype,
                            axes.checkpoint_format, 20)  # fmt: skip
        cells.append(Cell(stack, model, scenario))
    return rec.install_error_records(run_id=str(like[0]["run_id"]), stack=stack, cells=cells,
                                     repeats=1, mode="forkserver", message=INSTALL)  # fmt: skip


def main() -> None:
    shutil.rmtree(HERE, ignore_errors=True)
    (HERE / "raw").mkdir(parents=True)
    ok = _records("tf4.57.6-torch2.8.0-py3.11", 1)
    runs: dict[str, list[dict[str, object]] | list[rec.Record]] = {
        "tf4.57.6-torch2.8.0-py3.11": ok,
        "tf5.5.4-torch2.5.1-py3.11": _error(_records("tf5.5.4-torch2.5.1-py3.11", 1)),
        "tf5.24.0-torch2.13.0-py3.11": _mismatch(_records("tf5.24.0-torch2.13.0-py3.11", 2)),
        "tf5.24.0-torch2.13.0-py3.12": _install_error(ok),
    }
    for stack, records in runs.items():
        text = "".join(json.dumps(r) + "\n" for r in records)
        (HERE / "raw" / f"{stack}.jsonl").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
