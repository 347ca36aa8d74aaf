"""What crosses the process boundary: the job the host hands a worker, and the result it writes.

Both travel as JSON files. The worker imports these types for checking only (no import at
run time), and the host builds and reads them, so there is no second description of them.
Must import on Python 3.9: typing's TypedDict, no `X | Y` outside annotations.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, TypedDict


class _JobRequired(TypedDict):
    model_path: str
    tokenizer_path: str
    prompts: List[str]
    low_cpu_mem_usage: Optional[bool]  # None: the keyword is left out
    device_map: Optional[str]
    dtype: str
    checkpoint_format: str
    max_new_tokens: int
    trust_remote_code: bool
    revision: Optional[str]
    sample_interval_s: float


class Job(_JobRequired, total=False):
    phase_file: str  # "<pid> <phase>" of the run in flight is written there


# python, torch, transformers, accelerate, safetensors, tokenizers, numpy: None if absent.
Versions = Dict[str, Optional[str]]


class Environment(TypedDict):
    versions: Versions
    machine: Dict[str, Any]  # cpu, cores, mem_total_mb, arch, os, gpu


class _PhaseRequired(TypedDict):
    seconds: float
    hwm_mb: Optional[float]
    rss_mb: Optional[float]
    anon_mb: Optional[float]
    file_mb: Optional[float]
    anon_peak_mb: Optional[float]


class Phase(_PhaseRequired, total=False):
    baseline_rss_mb: Optional[float]  # the import phase: RSS when the interpreter started
    cuda_alloc_peak_mb: float
    cuda_reserved_peak_mb: float


class Output(TypedDict):
    prompt: str
    ids: List[int]
    margins: List[float]  # top-1 minus top-2 score at every step
    seconds: float
    text: str


class Result(TypedDict, total=False):
    """The worker's one JSON object; keys are absent where the run did not get that far."""

    worker_api: int
    status: str  # ok, unsupported or error: what the worker itself can tell
    message: str
    reason: Optional[str]  # for unsupported: the known reason
    traceback: str
    env: Environment
    memory_method: str  # clear_refs or ru_maxrss
    import_s: Optional[float]
    pid: int
    load_kwargs: Dict[str, Any]
    baseline: Dict[str, Optional[float]]
    phases: Dict[str, Phase]
    pickle_load: str
    params: int
    param_bytes: int
    hf_device_map: Optional[Dict[str, Any]]
    ttft_s: float
    tokens_per_s: Optional[float]
    new_tokens: int
    outputs: List[Output]
    sampler_samples: int
    prefault: Dict[str, Any]
    # Added by the host for capped runs.
    budget_method: str
    budget_mb: float
