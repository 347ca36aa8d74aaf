"""Record fixtures for the report tests: committed run folders and a synthetic record factory.

A plain module (not conftest.py) imported by tests/test_{tables,report,plots,claims,dashboard}.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from harness.metrics import MIB

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from harness.records import Record

DATA = Path(__file__).parent / "data"
# A hand-written run: two stacks that ran, one that failed to install, an XSS message.
HANDMADE = DATA / "handmade"
# Real records: the smoke profile on four stacks, and a subset of a default-profile run.
SMOKE = DATA / "run-smoke"
DEFAULT = DATA / "run-default"


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
) -> Record:
    """A record shaped like harness.records.build_record's; memory defaults to the weights.

    Partial, as hand-made and older records are: the fields the report reads.
    """
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
    return cast("Record", record)


def write_run(run_dir: Path, records: Sequence[Mapping[str, object]]) -> Path:
    """Records into run_dir/raw/<stack>.jsonl, as the runner lays them out."""
    raw = run_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for r in records:
        with (raw / f"{r['stack_id']}.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(r) + "\n")
    return run_dir


def copy_run(source: Path, target: Path) -> Path:
    """A committed run copied, so reports written into it stay out of tests/data."""
    for path in (source / "raw").glob("*.jsonl"):
        (target / "raw").mkdir(parents=True, exist_ok=True)
        (target / "raw" / path.name).write_bytes(path.read_bytes())
    return target
