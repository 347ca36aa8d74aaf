"""The record schema: building records from worker results, appending and reading them."""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from pathlib import Path

    from harness.config.matrix import Cell, Stack

SCHEMA_VERSION = 1
MIB = 1024 * 1024
STATUSES = ("ok", "unsupported", "install_error", "error", "timeout", "killed")
# Statuses that do not fail a run: it worked, or the library itself refuses the combination.
GOOD_STATUSES = frozenset({"ok", "unsupported"})
MEMORY_PHASES = ("load", "first_token", "generate")


class TornLineWarning(UserWarning):
    """A record file ends in a partial line: a crash happened mid-write."""


@dataclass(frozen=True)
class Outcome:
    """What the runner saw of one worker, before it becomes a record."""

    status: str
    message: str
    result: dict[str, Any]
    wall_s: float


def machine_fingerprint(machine: dict[str, Any]) -> str:
    """Short stable id so records from different machines are never averaged together."""
    keys = ("cpu", "cores", "mem_total_mb", "arch", "gpu")
    text = json.dumps({k: machine.get(k) for k in keys}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _delta(a: object, b: object) -> float | None:
    x, y = _num(a), _num(b)
    return None if x is None or y is None else round(x - y, 3)


def _max(values: Iterable[object]) -> float | None:
    nums = [v for v in (_num(x) for x in values) if v is not None]
    return max(nums) if nums else None


def memory_fields(result: dict[str, Any]) -> dict[str, float | None]:
    """Derive the flat memory fields, in MiB relative to the RSS just before from_pretrained."""
    phases: dict[str, dict[str, Any]] = result.get("phases") or {}
    base: dict[str, Any] = result.get("baseline") or {}
    load = phases.get("load", {})
    gen = phases.get("generate", {})
    present = [phases[p] for p in MEMORY_PHASES if p in phases]
    hwm = _max(p.get("hwm_mb") for p in present)
    anon_peak = _max(p.get("anon_peak_mb") for p in present)
    peak = _delta(hwm, base.get("rss_mb"))
    param_bytes = _num(result.get("param_bytes"))
    cuda = _max(p.get("cuda_alloc_peak_mb") for p in present)
    cuda_reserved = _max(p.get("cuda_reserved_peak_mb") for p in present)
    return {
        "load_peak_mb": _delta(load.get("hwm_mb"), base.get("rss_mb")),
        "peak_mb": peak,
        "anon_mb": _delta(gen.get("anon_mb"), base.get("anon_mb")),
        "file_mb": _delta(gen.get("file_mb"), base.get("file_mb")),
        "anon_peak_mb": _delta(anon_peak, base.get("anon_mb")),
        "load_anon_mb": _delta(load.get("anon_mb"), base.get("anon_mb")),
        "load_file_mb": _delta(load.get("file_mb"), base.get("file_mb")),
        "peak_ratio": (
            round(peak / (param_bytes / MIB), 4) if peak is not None and param_bytes else None
        ),
        "cuda_peak_mb": round(cuda, 3) if cuda is not None else None,
        "cuda_reserved_peak_mb": round(cuda_reserved, 3) if cuda_reserved is not None else None,
    }


def build_record(
    *,
    run_id: str,
    cell: Cell,
    repeat: int,
    mode: str,
    outcome: Outcome,
    env: dict[str, Any] | None,
) -> dict[str, Any]:
    """One flat record; the worker's nested phases are kept under `phases`."""
    result = outcome.result
    env = result.get("env") or env or {}
    versions: dict[str, Any] = env.get("versions", {})
    machine: dict[str, Any] = env.get("machine", {})
    phases: dict[str, dict[str, Any]] = result.get("phases") or {}
    outputs: list[dict[str, Any]] = result.get("outputs") or []
    scenario = cell.scenario
    record: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "stack_id": cell.stack.id,
        "python_version": versions.get("python"),
        "torch_version": versions.get("torch"),
        "transformers_version": versions.get("transformers"),
        "accelerate_version": versions.get("accelerate"),
        "safetensors_version": versions.get("safetensors"),
        "tokenizers_version": versions.get("tokenizers"),
        "numpy_version": versions.get("numpy"),
        "machine": machine,
        "machine_fingerprint": machine_fingerprint(machine) if machine else None,
        "model": cell.model.id,
        "model_source": cell.model.source,
        "params": result.get("params"),
        "param_bytes": result.get("param_bytes"),
        "cell_id": cell.id,
        "scenario": scenario.id,
        "low_cpu_mem_usage": scenario.low_cpu_mem_usage,
        "device_map": scenario.device_map,
        "dtype": scenario.dtype,
        "checkpoint_format": scenario.checkpoint_format,
        "max_new_tokens": scenario.max_new_tokens,
        "trust_remote_code": cell.model.trust_remote_code,
        "repeat": repeat,
        "mode": mode,
        "status": outcome.status,
        "message": outcome.message,
        "reason": result.get("reason"),
        "import_s": result.get("import_s"),
        "load_s": _num(phases.get("load", {}).get("seconds")),
        "ttft_s": result.get("ttft_s"),
        "tokens_per_s": result.get("tokens_per_s"),
        **memory_fields(result),
        "memory_method": result.get("memory_method"),
        "output_ids": [o["ids"] for o in outputs],
        "output_text": [o["text"] for o in outputs],
        "margins": [o["margins"] for o in outputs],
        "prompts": [o["prompt"] for o in outputs] or list(cell.model.prompts),
        "load_kwargs": result.get("load_kwargs"),
        "hf_device_map": result.get("hf_device_map"),
        "phases": phases,
        "baseline": result.get("baseline"),
        "wall_s": round(outcome.wall_s, 3),
        "prefault": result.get("prefault"),
        "pickle_load": result.get("pickle_load"),
        "budget_method": result.get("budget_method"),
        "budget_mb": result.get("budget_mb"),
    }
    if outcome.status != "ok":
        record["traceback"] = result.get("traceback")
    return record


def append(path: Path, record: dict[str, Any]) -> None:
    """Append one JSON line with a single write and fsync, so a crash leaves whole lines."""
    line = (json.dumps(record, default=str, separators=(",", ":")) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> Iterator[dict[str, Any]]:
    """Records of one JSONL file; a torn last line (a crash mid-write) is skipped."""
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.endswith("\n"):
                warnings.warn(
                    f"{path}:{number}: skipped a partial last line", TornLineWarning, stacklevel=2
                )
                break
            yield json.loads(line)


def read_run(run_dir: Path) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in sorted((run_dir / "raw").glob("*.jsonl")):
        records.extend(read(path))
    return records


def failed(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in records if r.get("status") not in GOOD_STATUSES]


def median_or_none(values: Iterable[object]) -> float | None:
    nums = [v for v in (_num(x) for x in values) if v is not None]
    return statistics.median(nums) if nums else None


def install_error_records(
    *, run_id: str, stack: Stack, cells: Iterable[Cell], repeats: int, mode: str, message: str
) -> list[dict[str, Any]]:
    outcome = Outcome(status="install_error", message=message, result={}, wall_s=0.0)
    return [
        build_record(run_id=run_id, cell=c, repeat=r, mode=mode, outcome=outcome, env=None)
        for r in range(repeats)
        for c in cells
        if c.stack.id == stack.id
    ]
