"""The record contract: `Record`, building records from worker results, appending and reading them.

One flat JSON object per (stack, model, scenario, repeat). Older or hand-made records may lack
fields, so readers use `.get` for anything the runner may not have written.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, NotRequired, TypedDict, TypeVar, cast

from harness import provenance
from harness.metrics import GOOD_STATUSES, MIB, GoldenVerdict, Status

# At run time too: typing.get_type_hints(Record) resolves Phase (harness.report.tables).
from harness.target.contract import Phase  # noqa: TC001

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from pathlib import Path

    from harness.config.matrix import Cell, Stack
    from harness.target.contract import Environment, Result

# 2 added provenance, CPU times, threads, load average, attention, input ids and runner-ups;
# 3 the axes batch, attn_requested, quantization and offload, and bytes_per_param. Older
# records read as they are, the new fields missing (readers use .get; the axes' defaults).
SCHEMA_VERSION = 3
MEMORY_PHASES = ("load", "first_token", "generate")


class GoldenDetail(TypedDict, total=False):
    """One prompt's verdict against the goldens (harness.golden.store); keys by verdict."""

    prompt: str
    verdict: GoldenVerdict
    file: str  # missing: the golden file that is not there
    golden_sha256: str  # stale: the weights the golden was made from ...
    model_sha256: str  # ... and the weights now
    position: int  # drift, mismatch: the first differing new token
    reference_margin: float | None  # the reference's top-1 minus top-2 score there
    candidate_margin: float | None  # the candidate's own there
    reference_runner_up: int | None  # the reference's top-2 token there
    tolerance: float
    expected_text: str  # mismatch
    actual_text: str
    expected_id: int | None
    actual_id: int | None
    expected_token: str | None  # the two tokens at the first divergence, decoded
    actual_token: str | None
    context: str | None  # a few decoded tokens before it
    input_position: int  # tokenizer: the first differing input token ...
    expected_input_id: int | None  # ... the golden's
    actual_input_id: int | None  # ... and this stack's
    expectation: str  # judged against a declared expectation: its reason
    cause: str  # batched and different: batching (the unbatched golden agrees), or version
    error: str  # e.g. ambiguous expectations


class GoldenFields(TypedDict):
    """What the golden judge adds to a record (harness.golden.store.Judge.stamp sets them)."""

    golden: GoldenVerdict | None  # None for a record without output
    golden_detail: list[GoldenDetail]


class MemoryFields(TypedDict):
    """MiB, relative to the RSS just before from_pretrained (derived by memory_fields)."""

    load_peak_mb: float | None
    peak_mb: float | None
    anon_mb: float | None
    file_mb: float | None
    anon_peak_mb: float | None
    load_anon_mb: float | None
    load_file_mb: float | None
    peak_ratio: float | None  # peak_mb over the parameters' MiB
    cuda_peak_mb: float | None
    cuda_reserved_peak_mb: float | None


class TimeFields(TypedDict):
    """Seconds, wall and CPU (user + sys of every thread), and decode rates."""

    import_s: float | None
    model_import_s: float | None  # the model's own modeling module, outside load_s
    load_s: float | None
    ttft_s: float | None
    tokens_per_s: float | None  # the first prompt, cold
    warm_tokens_per_s: float | None  # the same prompt again, warmed
    load_cpu_s: float | None
    ttft_cpu_s: float | None
    generate_cpu_s: float | None


class Record(MemoryFields, TimeFields):
    """One run of one cell, as `build_record` writes it (schema_version 3)."""

    schema_version: int
    harness_version: str  # the package version, "+g<sha>" from a git checkout
    worker_sha256: str  # the worker code that measured
    run_id: str
    stack_id: str
    # Read inside the stack's environment; None for an install_error.
    python_version: str | None
    torch_version: str | None
    transformers_version: str | None
    accelerate_version: str | None
    safetensors_version: str | None
    tokenizers_version: str | None
    numpy_version: str | None
    machine: dict[str, object]  # cpu, cores, mem_total_mb, arch, os, gpu; {} if unknown
    machine_fingerprint: str | None
    model: str
    model_source: str
    model_revision: str | None  # hub: the commit measured, resolved in the local cache
    model_type: str | None  # the family (config.model_type), for grouping by family
    architectures: list[str]  # config.architectures
    shards: int | None  # the checkpoint's weight files in the loaded format ...
    largest_shard_mb: float | None  # ... and the largest of them, in MiB
    params: int | None  # counted once (tied weights are one)
    param_bytes: int | None  # at the loaded dtype; quantized: the stored bytes
    bytes_per_param: float | None
    offloaded_params: int | None  # offload: params device_map placed on disk
    # What ran.
    cell_id: str
    scenario: str
    low_cpu_mem_usage: bool | None  # None: the keyword was left out
    device_map: str | None
    dtype: str
    checkpoint_format: str
    batch: int  # prompts generated together, left-padded
    attn_requested: str  # the attn_implementation axis; "default": the keyword left out
    quantization: str  # none or int8 (weight-only)
    offload: str  # none or disk
    max_new_tokens: int
    trust_remote_code: bool
    repeat: int
    mode: str  # forkserver or fresh
    status: Status
    message: str
    reason: str | None  # unsupported: the known reason; under a cap: memory_budget
    traceback: NotRequired[str | None]  # only when status is not ok
    # The time fields come from TimeFields, the memory fields from MemoryFields.
    memory_method: str | None  # clear_refs or ru_maxrss
    anon_samples: int | None  # samples behind anon_peak_mb: it is a lower bound
    threads: int | None  # torch's intra- and inter-op threads during the run
    interop_threads: int | None
    load_avg_1m: float | None  # the machine's load average when the run started
    attn_implementation: str | None  # what the loaded model used
    # Per prompt.
    input_ids: list[list[int]]  # what the stack's tokenizer made of each prompt
    output_ids: list[list[int]]
    output_text: list[str]
    output_tokens: list[list[str]]  # each new token decoded alone
    margins: list[list[float]]  # top-1 minus top-2 score at every step
    runner_up: list[list[int]]  # the top-2 token at every step
    prompts: list[str]
    load_kwargs: dict[str, object] | None
    hf_device_map: dict[str, object] | None
    phases: dict[str, Phase]  # absolute, per phase
    baseline: dict[str, float | None] | None  # the absolute counters before from_pretrained
    wall_s: float  # the run as the host saw it
    started_at: float | None  # unix seconds: the order runs of interleaved stacks took
    prefault: dict[str, object] | None  # fork-server only
    warnings: list[str]  # what makes a figure less trustworthy, e.g. no prefault
    load_network_attempts: int | None  # connections tried inside from_pretrained
    pickle_load: str | None  # .bin only: weights_only or unsafe
    budget_method: str | None  # under --memory-budget / --fit
    budget_mb: float | None
    # Added by the runner after build_record.
    weights_sha256: NotRequired[str | None]
    golden: NotRequired[GoldenVerdict | None]
    golden_detail: NotRequired[list[GoldenDetail]]


class TornLineWarning(UserWarning):
    """A record file ends in a partial line: a crash happened mid-write."""


@dataclass(frozen=True)
class Outcome:
    """What the runner saw of one worker, before it becomes a record."""

    status: Status
    message: str
    result: Result
    wall_s: float
    started_at: float | None = None  # unix seconds when the host started the run


def _per(part: object, whole: object) -> float | None:
    p, w = _num(part), _num(whole)
    return round(p / w, 4) if p is not None and w else None


def _num(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _delta(a: object, b: object) -> float | None:
    x, y = _num(a), _num(b)
    return None if x is None or y is None else round(x - y, 3)


def numbers(values: Iterable[object]) -> list[float]:  # booleans are not numbers
    return [v for v in map(_num, values) if v is not None]


def memory_fields(result: Result) -> MemoryFields:
    """Derive the flat memory fields, in MiB relative to the RSS just before from_pretrained."""
    phases = result.get("phases") or {}
    base = result.get("baseline") or {}
    load: Mapping[str, object] = phases.get("load", {})
    gen: Mapping[str, object] = phases.get("generate", {})
    present: list[Mapping[str, object]] = [phases[p] for p in MEMORY_PHASES if p in phases]

    def highest(key: str, minus: object = 0.0) -> float | None:  # over the phases measured
        return _delta(max(numbers(p.get(key) for p in present), default=None), minus)

    peak = highest("hwm_mb", base.get("rss_mb"))
    param_bytes = _num(result.get("param_bytes"))
    return {
        "load_peak_mb": _delta(load.get("hwm_mb"), base.get("rss_mb")),
        "peak_mb": peak,
        "anon_mb": _delta(gen.get("anon_mb"), base.get("anon_mb")),
        "file_mb": _delta(gen.get("file_mb"), base.get("file_mb")),
        "anon_peak_mb": highest("anon_peak_mb", base.get("anon_mb")),
        "load_anon_mb": _delta(load.get("anon_mb"), base.get("anon_mb")),
        "load_file_mb": _delta(load.get("file_mb"), base.get("file_mb")),
        "peak_ratio": _per(peak, param_bytes / MIB if param_bytes else None),
        "cuda_peak_mb": highest("cuda_alloc_peak_mb"),
        "cuda_reserved_peak_mb": highest("cuda_reserved_peak_mb"),
    }


def _warnings(result: Result) -> list[str]:
    attempts = result.get("load_network_attempts")
    network = f"from_pretrained tried {attempts} network connections: load_s includes them"
    found = [(result.get("prefault") or {}).get("warning"), attempts and network,
             *result.get("warnings", [])]  # fmt: skip
    return [str(w) for w in found if w]


def _phase_num(phases: Mapping[str, Phase], phase: str, key: str) -> float | None:
    return _num(phases[phase].get(key)) if phase in phases else None


def build_record(
    *,
    run_id: str,
    cell: Cell,
    repeat: int,
    mode: str,
    outcome: Outcome,
    env: Environment | None,
) -> Record:
    """One flat record; the worker's nested phases are kept under `phases`."""
    result = outcome.result
    found = result.get("env") or env
    versions = (found.get("versions") if found else None) or {}
    machine: dict[str, object] = dict((found.get("machine") if found else None) or {})
    phases = result.get("phases") or {}
    outputs = result.get("outputs") or []
    scenario = cell.scenario
    record: Record = {
        "schema_version": SCHEMA_VERSION,
        "harness_version": provenance.harness_version(),
        "worker_sha256": provenance.worker_sha256(),
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
        "machine_fingerprint": provenance.machine_fingerprint(machine) if machine else None,
        "model": cell.model.id,
        "model_source": cell.model.source,
        "model_revision": result.get("resolved_revision"),
        "model_type": result.get("model_type"),
        "architectures": list(result.get("architectures") or []),
        "shards": result.get("shards"),
        "largest_shard_mb": result.get("largest_shard_mb"),
        "params": result.get("params"),
        "param_bytes": result.get("param_bytes"),
        "bytes_per_param": _per(result.get("param_bytes"), result.get("params")),
        "offloaded_params": result.get("offloaded_params"),
        "cell_id": cell.id,
        "scenario": scenario.id,
        "low_cpu_mem_usage": scenario.low_cpu_mem_usage,
        "device_map": scenario.device_map,
        "dtype": scenario.dtype,
        "checkpoint_format": scenario.checkpoint_format,
        "batch": scenario.batch,
        "attn_requested": scenario.attn_implementation,
        "quantization": scenario.quantization,
        "offload": scenario.offload,
        "max_new_tokens": scenario.max_new_tokens,
        "trust_remote_code": cell.model.trust_remote_code,
        "repeat": repeat,
        "mode": mode,
        "status": outcome.status,
        "message": outcome.message,
        "reason": result.get("reason"),
        "import_s": result.get("import_s"),
        "model_import_s": result.get("model_import_s"),
        "load_s": _phase_num(phases, "load", "seconds"),
        "ttft_s": result.get("ttft_s"),
        "tokens_per_s": result.get("tokens_per_s"),
        "warm_tokens_per_s": result.get("warm_tokens_per_s"),
        "load_cpu_s": _phase_num(phases, "load", "cpu_s"),
        "ttft_cpu_s": _phase_num(phases, "first_token", "cpu_s"),
        "generate_cpu_s": _phase_num(phases, "generate", "cpu_s"),
        **memory_fields(result),  # type: ignore[typeddict-item]  # NotRequired keys come later
        "memory_method": result.get("memory_method"),
        "anon_samples": result.get("sampler_samples"),
        "threads": result.get("threads"),
        "interop_threads": result.get("interop_threads"),
        "load_avg_1m": result.get("load_avg_1m"),
        "attn_implementation": result.get("attn_implementation"),
        "input_ids": [o.get("input_ids", []) for o in outputs],
        "output_ids": [o["ids"] for o in outputs],
        "output_text": [o["text"] for o in outputs],
        "output_tokens": [o.get("tokens", []) for o in outputs],
        "margins": [o["margins"] for o in outputs],
        "runner_up": [o.get("runner_up", []) for o in outputs],
        "prompts": [o["prompt"] for o in outputs] or list(cell.model.prompts),
        "load_kwargs": result.get("load_kwargs"),
        "hf_device_map": result.get("hf_device_map"),
        "phases": phases,
        "baseline": result.get("baseline"),
        "wall_s": round(outcome.wall_s, 3),
        "started_at": outcome.started_at,
        "prefault": result.get("prefault"),
        "warnings": _warnings(result),
        "load_network_attempts": result.get("load_network_attempts"),
        "pickle_load": result.get("pickle_load"),
        "budget_method": result.get("budget_method"),
        "budget_mb": result.get("budget_mb"),
    }
    if outcome.status != "ok":
        record["traceback"] = result.get("traceback")
    return record


def append(path: Path, record: Mapping[str, object]) -> None:
    """Append one JSON line (a record or a fit record) with one write and fsync: whole lines."""
    line = (json.dumps(record, default=str, separators=(",", ":")) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def read(path: Path) -> Iterator[Record]:
    """Records of one JSONL file, as they are; a torn last line (a crash mid-write) is skipped."""
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.endswith("\n"):
                warnings.warn(
                    f"{path}:{number}: skipped a partial last line", TornLineWarning, stacklevel=2
                )
                break
            yield cast("Record", json.loads(line))


def read_run(run_dir: Path) -> list[Record]:
    return [r for path in sorted((run_dir / "raw").glob("*.jsonl")) for r in read(path)]


_R = TypeVar("_R", bound="Mapping[str, object]")


def failed(records: Iterable[_R]) -> list[_R]:
    return [r for r in records if r.get("status") not in GOOD_STATUSES]


def install_error_records(
    *, run_id: str, stack: Stack, cells: Iterable[Cell], repeats: int, mode: str, message: str
) -> list[Record]:
    outcome = Outcome(status="install_error", message=message, result={}, wall_s=0.0)
    return [
        build_record(run_id=run_id, cell=c, repeat=r, mode=mode, outcome=outcome, env=None)
        for r in range(repeats)
        for c in cells
        if c.stack.id == stack.id
    ]
