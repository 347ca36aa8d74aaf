"""Record derivation and the append-only JSONL files."""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING

import pytest

from harness import paths, records
from harness.config.matrix import Cell, Model, Scenario, Stack

if TYPE_CHECKING:
    from pathlib import Path

    from harness.target.contract import Result

STACK = Stack(
    id="tf4.46.3-torch2.5.1-py3.11", python="3.11", transformers="4.46.3", torch="2.5.1",
    accelerate="1.1.1", pins=(), find_links=(), index_url=None, torch_backend=None,
)  # fmt: skip
MODEL = Model(id="tiny-gpt2", source="embedded", location="tiny-gpt2", prompts=("Hi",),
              revision=None, trust_remote_code=False)  # fmt: skip
SCENARIO = Scenario(low_cpu_mem_usage=True, device_map=None, dtype="float32",
                    checkpoint_format="safetensors", max_new_tokens=5)  # fmt: skip
CELL = Cell(stack=STACK, model=MODEL, scenario=SCENARIO)

WORKER_RESULT: Result = {
    "status": "ok",
    "message": "",
    "env": {"versions": {"python": "3.11.7", "torch": "2.5.1", "transformers": "4.46.3",
                         "accelerate": "1.1.1"},
            "machine": {"cpu": "x", "cores": 2, "mem_total_mb": 1000.0, "arch": "x86_64"}},
    "params": 1_000_000,
    "param_bytes": 4 * 1024 * 1024,
    "baseline": {"rss_mb": 500.0, "anon_mb": 400.0, "file_mb": 100.0, "hwm_mb": 510.0},
    "phases": {
        "load": {"seconds": 0.5, "hwm_mb": 508.0, "rss_mb": 504.0, "anon_mb": 401.0,
                 "file_mb": 103.0, "anon_peak_mb": 402.0},
        "first_token": {"seconds": 0.1, "hwm_mb": 506.0, "rss_mb": 505.0, "anon_mb": 401.0,
                        "file_mb": 104.0, "anon_peak_mb": 401.5},
        "generate": {"seconds": 0.2, "cpu_s": 0.38, "hwm_mb": 507.0, "rss_mb": 506.0,
                     "anon_mb": 402.0, "file_mb": 104.0, "anon_peak_mb": 403.0},
    },
    "threads": 2,
    "interop_threads": 2,
    "load_avg_1m": 0.7,
    "attn_implementation": "sdpa",
    "warm_tokens_per_s": 55.0,
    "sampler_samples": 41,
    "prefault": {"pages": 0, "seconds": 0.0, "warning": "cannot read /proc/1/pagemap"},
    "ttft_s": 0.1,
    "tokens_per_s": 40.0,
    "outputs": [{"prompt": "Hi", "ids": [1, 2], "text": " there", "margins": [3.0, 2.5],
                 "seconds": 0.2, "input_ids": [17, 18], "runner_up": [5, 6],
                 "tokens": [" the", "re"]}],
    "memory_method": "clear_refs",
}  # fmt: skip


def test_memory_fields_are_relative_to_pre_load_rss() -> None:
    fields = records.memory_fields(WORKER_RESULT)
    assert fields["load_peak_mb"] == 8.0
    assert fields["peak_mb"] == 8.0  # max hwm over load..generate minus baseline rss
    assert fields["anon_mb"] == 2.0
    assert fields["file_mb"] == 4.0
    assert fields["anon_peak_mb"] == 3.0
    assert fields["peak_ratio"] == 2.0  # 8 MiB over 4 MiB of parameters
    assert fields["cuda_peak_mb"] is None


def test_memory_fields_survive_a_failed_load() -> None:
    fields = records.memory_fields({"status": "error", "phases": {}})
    assert set(fields.values()) == {None}


def test_build_record_has_the_documented_fields() -> None:
    outcome = records.Outcome("ok", "", WORKER_RESULT, 1.25)
    record = records.build_record(run_id="r1", cell=CELL, repeat=2, mode="forkserver",
                                  outcome=outcome, env=None)  # fmt: skip
    required = {
        "schema_version", "run_id", "stack_id", "python_version", "torch_version",
        "transformers_version", "accelerate_version", "model", "params", "param_bytes",
        "scenario", "low_cpu_mem_usage", "device_map", "dtype", "checkpoint_format", "repeat",
        "status", "message", "load_s", "ttft_s", "tokens_per_s", "load_peak_mb", "peak_mb",
        "anon_mb", "file_mb", "peak_ratio", "cuda_peak_mb", "output_ids", "output_text", "margins",
    }  # fmt: skip
    assert required <= record.keys()
    assert record["scenario"] == "st/fp32/lcmu=true/dm=none"
    assert record["cell_id"] == "tiny-gpt2/st/fp32/lcmu=true/dm=none"
    assert record["torch_version"] == "2.5.1"
    assert record["output_ids"] == [[1, 2]]
    assert record["load_s"] == 0.5
    assert record["machine_fingerprint"]
    assert len(record["machine_fingerprint"]) == 12
    json.dumps(record)  # serialisable as is


def test_a_record_says_what_made_it_and_under_which_conditions() -> None:
    outcome = records.Outcome("ok", "", WORKER_RESULT, 1.25)
    record = records.build_record(run_id="r1", cell=CELL, repeat=0, mode="forkserver",
                                  outcome=outcome, env=None)  # fmt: skip
    assert record["schema_version"] == records.SCHEMA_VERSION == 3
    assert record["harness_version"].startswith("0.1.0")
    worker_hash = hashlib.sha256(paths.WORKER.read_bytes()).hexdigest()[:16]
    assert record["worker_sha256"] == worker_hash
    assert (record["threads"], record["interop_threads"], record["load_avg_1m"]) == (2, 2, 0.7)
    assert record["attn_implementation"] == "sdpa"
    assert (record["generate_cpu_s"], record["load_cpu_s"]) == (0.38, None)
    assert record["warm_tokens_per_s"] == 55.0
    assert record["anon_samples"] == 41
    assert (record["input_ids"], record["runner_up"]) == ([[17, 18]], [[5, 6]])
    assert record["output_tokens"] == [[" the", "re"]]
    assert record["warnings"] == ["cannot read /proc/1/pagemap"]
    slow = records.Outcome("ok", "", {**WORKER_RESULT, "load_network_attempts": 7}, 1.0)
    flagged = records.build_record(run_id="r1", cell=CELL, repeat=0, mode="forkserver",
                                   outcome=slow, env=None)  # fmt: skip
    assert flagged["warnings"][-1] == (
        "from_pretrained tried 7 network connections: load_s includes them"
    )


def test_append_and_read_skip_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "raw" / "s.jsonl"
    for i in range(3):
        records.append(path, {"repeat": i, "status": "ok"})
    with path.open("a") as fh:
        fh.write('{"repeat": 3, "sta')  # a crash in the middle of a write
    with pytest.warns(records.TornLineWarning, match="partial last line"):
        assert [r["repeat"] for r in records.read(path)] == [0, 1, 2]


def test_install_error_records_cover_every_cell_and_repeat() -> None:
    recs = records.install_error_records(run_id="r", stack=STACK, cells=[CELL], repeats=3,
                                         mode="forkserver", message="No solution found")  # fmt: skip
    assert [r["repeat"] for r in recs] == [0, 1, 2]
    assert {r["status"] for r in recs} == {"install_error"}
    assert recs[0]["message"] == "No solution found"
    assert recs[0]["torch_version"] is None  # nothing was installed to read it from


@pytest.mark.parametrize(
    ("statuses", "bad"),
    [(["ok", "unsupported"], 0), (["ok", "error", "timeout", "killed", "install_error"], 4)],
)
def test_failed_ignores_ok_and_unsupported(statuses: list[str], bad: int) -> None:
    assert len(records.failed({"status": s} for s in statuses)) == bad
