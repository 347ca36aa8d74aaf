"""What crosses the process boundary: the job the host hands a worker, and the result it writes.

Both travel as JSON files. The worker imports these types for checking only (no import at
run time), and the host builds and reads them, so there is no second description of them.
Must import on Python 3.9: typing's TypedDict, no `X | Y` outside annotations.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, TypedDict  # noqa: UP035 - evaluated at import on 3.9


class _JobRequired(TypedDict):
    model_path: str
    tokenizer_path: str
    prompts: list[str]
    low_cpu_mem_usage: bool | None  # None: the keyword is left out
    device_map: str | None
    dtype: str
    checkpoint_format: str
    max_new_tokens: int
    trust_remote_code: bool
    revision: str | None
    sample_interval_s: float


class Job(_JobRequired, total=False):
    phase_file: str  # "<pid> <phase>" of the run in flight is written there
    threads: int  # torch's intra-op threads; absent: torch's default
    interop_threads: int
    # The later axes; absent: their defaults (1, "default", "none", "none").
    batch: int  # prompts generated together, padded on the left
    attn_implementation: str  # "default": the keyword is left out
    quantization: str  # "int8": weight-only, through transformers' QuantoConfig
    offload: str  # "disk": device_map="auto" with max_memory and offload_folder
    offload_folder: str
    max_memory_mb: float  # offload: the CPU's share (measure.models.offload_cpu_share_mb)
    allow_unsafe_pickle: bool  # .bin on a torch without weights_only: run anyway


# python, torch, transformers, accelerate, safetensors, tokenizers, numpy: None if absent.
Versions = Dict[str, Optional[str]]  # noqa: UP006 - a runtime alias, evaluated on 3.9


class Environment(TypedDict):
    versions: Versions
    machine: dict[str, Any]  # cpu, cores, mem_total_mb, arch, os, gpu


class _PhaseRequired(TypedDict):
    seconds: float
    hwm_mb: float | None
    rss_mb: float | None
    anon_mb: float | None
    file_mb: float | None
    anon_peak_mb: float | None


class Phase(_PhaseRequired, total=False):
    cpu_s: float  # user + sys of every thread: the low-noise figure on a shared machine
    baseline_rss_mb: float | None  # the import phase: RSS when the interpreter started
    cuda_alloc_peak_mb: float
    cuda_reserved_peak_mb: float


class _OutputRequired(TypedDict):
    prompt: str
    ids: list[int]
    margins: list[float]  # top-1 minus top-2 score at every step
    seconds: float
    text: str


class Output(_OutputRequired, total=False):  # the keys below: since record schema 2
    input_ids: list[int]  # what the stack's tokenizer made of the prompt
    runner_up: list[int]  # the top-2 token at every step
    tokens: list[str]  # each new token decoded alone


class Result(TypedDict, total=False):
    """The worker's one JSON object; keys are absent where the run did not get that far."""

    worker_api: int
    status: str  # ok, unsupported or error: what the worker itself can tell
    message: str
    reason: str | None  # for unsupported: the known reason
    traceback: str
    env: Environment
    memory_method: str  # clear_refs or ru_maxrss
    import_s: float | None
    pid: int
    load_kwargs: dict[str, Any]
    baseline: dict[str, float | None]
    phases: dict[str, Phase]
    pickle_load: str
    params: int
    param_bytes: int  # quantized tensors: the bytes of what they store
    offloaded_params: int  # params that device_map placed on "disk"
    warnings: list[str]  # what makes the run mean less than its scenario says
    hf_device_map: dict[str, Any] | None
    attn_implementation: str | None  # what the loaded model's config says it uses
    model_type: str | None  # the model's config: its family ...
    architectures: list[str]  # ... and the classes it names
    model_import_s: float  # importing the model's own modeling module, before the baseline
    load_network_attempts: int  # connections from_pretrained tried: timed as loading
    load_avg_1m: float | None  # the machine's load when the run started
    threads: int
    interop_threads: int
    ttft_s: float
    tokens_per_s: float | None
    warm_tokens_per_s: float | None  # the first prompt again, after the measured phases
    new_tokens: int
    outputs: list[Output]
    sampler_samples: int
    prefault: dict[str, Any]
    # Added by the host: for capped runs, and a hub model's commit resolved in the cache.
    budget_method: str
    budget_mb: float
    resolved_revision: str
    shards: int  # the weight files of the loaded format, and the largest in MiB
    largest_shard_mb: float
