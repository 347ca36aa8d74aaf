"""Measure ONE load-and-generate run inside a stack's own environment, not the harness's: it
imports only the standard library, torch, transformers, safetensors, tokenizers and accelerate,
and must import on Python >= 3.9. Results travel through a JSON file, never through stdout.

Over 400 lines on purpose: it is started as one file with `python -I` (no package on
sys.path, so nothing of the host can shadow a stdlib module), and a second module would
have to be found by path manipulation inside the measured process.

Commands:
  worker.py env --out FILE             versions, machine and installed packages
  worker.py run --job FILE --out FILE  one run in this fresh interpreter (imports measured)
  worker.py serve                      fork-server: import once, fork a child per job
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.metadata
import itertools
import json
import os
import platform
import re
import resource
import signal
import struct
import sys
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    # Types only: at run time this file imports nothing but the stdlib and the stack.
    from collections.abc import Mapping

    from harness.target.contract import Environment, Job, Output, Phase, Result

WORKER_API = 1
MIB = 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_DISTS = ("torch", "transformers", "accelerate", "safetensors", "tokenizers", "numpy")


# ---------------------------------------------------------------- kernel counters


def _status_kib(fields: tuple[str, ...]) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                if key in fields:
                    out[key] = int(rest.split()[0])
    except OSError:
        pass
    return out


class Memory:
    """Per-phase peaks: VmHWM reset through clear_refs on Linux, ru_maxrss elsewhere."""

    def __init__(self) -> None:
        self.method = "clear_refs" if self.reset() else "ru_maxrss"

    @staticmethod
    def reset() -> bool:
        """Start a new peak; False where the kernel cannot (ru_maxrss is then read)."""
        try:
            with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
                fh.write("5")
        except OSError:
            return False
        return True

    def snapshot(self) -> dict[str, float | None]:
        kib = _status_kib(("VmHWM", "VmRSS", "RssAnon", "RssFile"))
        if self.method == "clear_refs" and "VmHWM" in kib:
            hwm = kib["VmHWM"] / 1024
        else:
            # ru_maxrss cannot be reset: it is the process-lifetime peak. Linux: KiB, macOS: bytes.
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            hwm = rss / MIB if sys.platform == "darwin" else rss / 1024
        fields = (("rss_mb", "VmRSS"), ("anon_mb", "RssAnon"), ("file_mb", "RssFile"))
        return {"hwm_mb": hwm, **{k: kib[f] / 1024 if f in kib else None for k, f in fields}}


class AnonSampler(threading.Thread):
    """Samples RssAnon, whose peak the kernel does not keep, from /proc/self/statm."""

    def __init__(self, interval_s: float) -> None:
        super().__init__(daemon=True, name="anon-sampler")
        self.interval_s = interval_s
        self._peak = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.samples = 0

    def run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval_s)

    def sample(self) -> None:
        try:
            with open("/proc/self/statm", encoding="ascii") as fh:
                parts = fh.read().split()
        except OSError:
            return
        # resident - shared(file + shmem) = anonymous pages
        pages = int(parts[1]) - int(parts[2])
        with self._lock:
            self.samples += 1
            self._peak = max(self._peak, pages)

    def take_peak(self) -> float | None:
        """The peak since the last call, in MiB; restarts the window."""
        self.sample()
        with self._lock:
            peak, self._peak = self._peak, 0
        return peak * _PAGE / MIB if peak else None

    def stop(self) -> None:
        self._stop.set()


def prefault_like(pid: int) -> tuple[int, str | None]:
    """Fault in the file pages that process `pid` has mapped; returns how many, and a
    warning when its page map cannot be read (the run's file memory then reads high).

    fork() does not copy page-table entries of file-backed mappings, so a forked child
    would fault the parent's library pages in again during the run and count them in
    its own deltas. Touching the same pages first gives the child the baseline a fresh
    interpreter has after its imports, so both modes measure the same thing.
    """
    import ctypes  # noqa: PLC0415 - only the fork-server needs it

    libc = ctypes.CDLL(None, use_errno=True)
    libc.madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    madv_populate_read = 22  # Linux >= 5.14: fault a range in with one call

    def populate(addr: int, count: int) -> None:
        if libc.madvise(addr, count * _PAGE, madv_populate_read) == 0:
            return
        for i in range(count):  # older kernels: one read per page
            ctypes.c_char.from_address(addr + i * _PAGE).value  # noqa: B018

    touched = 0
    try:
        maps = open(f"/proc/{pid}/maps", encoding="utf-8")  # noqa: SIM115
        pagemap = open(f"/proc/{pid}/pagemap", "rb")  # noqa: SIM115
    except OSError as exc:
        return 0, f"cannot read /proc/{pid}/pagemap ({exc.strerror}): no prefault"
    with maps, pagemap:
        for line in maps:
            fields = line.split()
            # Only readable mappings of real files: inode set, path absolute.
            if len(fields) < 6 or fields[4] == "0" or "r" not in fields[1]:
                continue
            if not fields[5].startswith("/"):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            pages = (end - start) // _PAGE
            try:
                pagemap.seek(start // _PAGE * 8)
                data = pagemap.read(pages * 8)
            except OSError:
                continue
            # Runs of pages present in the parent's page table (bit 63), one call per run.
            bits = (entry >> 63 for (entry,) in struct.iter_unpack("<Q", data))
            index = 0
            for present, run in itertools.groupby(bits):
                count = sum(1 for _ in run)
                if present:
                    populate(start + index * _PAGE, count)
                    touched += count
                index += count
    return touched, None


# ---------------------------------------------------------------- version adaptation


def parse_version(text: str) -> tuple[int, ...]:
    """Release part of a PEP 440 version: '2.5.1+cu124' -> (2, 5, 1)."""
    match = re.match(r"\d+(?:\.\d+)*", text)
    return tuple(int(part) for part in match.group().split(".")) if match else ()


def load_kwargs(
    tf_version: str, job: Job, torch_mod: Any, transformers_mod: Any = None
) -> dict[str, Any]:
    """The from_pretrained keywords for this scenario on this transformers version."""
    # The dtype keyword was renamed in 4.56; the old one logs a deprecation after.
    dtype_kw = "dtype" if parse_version(tf_version) >= (4, 56) else "torch_dtype"
    kwargs: dict[str, Any] = {dtype_kw: getattr(torch_mod, job["dtype"])}
    # Omitted means omitted: the library's own default is what is being measured.
    if job.get("low_cpu_mem_usage") is not None:
        kwargs["low_cpu_mem_usage"] = bool(job["low_cpu_mem_usage"])
    if job.get("device_map") is not None:
        kwargs["device_map"] = job["device_map"]
    kwargs["use_safetensors"] = job["checkpoint_format"] == "safetensors"
    if job.get("trust_remote_code"):
        kwargs["trust_remote_code"] = True
    if job.get("revision"):
        kwargs["revision"] = job["revision"]
    if job.get("attn_implementation", "default") != "default":
        kwargs["attn_implementation"] = job["attn_implementation"]
    if job.get("quantization", "none") == "int8" and transformers_mod is not None:
        # Weight-only int8 through optimum-quanto, the stack's own pin; no config class: refused.
        config = getattr(transformers_mod, "QuantoConfig", None)
        kwargs["quantization_config"] = config(weights="int8") if config else "int8"
    if job.get("offload", "none") == "disk":
        kwargs["device_map"] = "auto"
        share = float(job["max_memory_mb"])  # KiB under 64 MiB: a tiny model's is not whole MiB
        cap = f"{share:.0f}MiB" if share >= 64 else f"{share * 1024:.0f}KiB"
        kwargs["max_memory"] = {"cpu": cap}
        kwargs["offload_folder"] = job.get("offload_folder") or "offload"
    return kwargs


# A known refusal is the library's own: its exception type and message, not only the versions.
_REFUSALS = {
    "lcmu": ("device_map requires low_cpu_mem_usage=True before transformers 4.51",
             ("ValueError",), r"device_map.*requires .?low_cpu_mem_usage=True"),
    "cve": ("transformers >= 4.52 refuses torch.load on torch < 2.6 (CVE-2025-32434)",
            ("ValueError",), r"upgrade torch to at least v2\.6"),
    "accelerate": ("device_map needs accelerate", ("ImportError", "ValueError"),
                   r"requires .?accelerate"),
    "cuda": ("device_map='cuda' on a machine without CUDA",
             ("AssertionError", "RuntimeError", "ValueError"),
             r"CUDA|NVIDIA driver|no GPU"),
    "attn": ("this version does not offer the attention implementation for this model",
             ("ValueError", "ImportError"),
             r"does not support|not supported|attn_implementation|scaled_dot_product"),
    "int8": ("int8 needs transformers' QuantoConfig and optimum-quanto in the stack",
             ("ImportError", "ValueError", "TypeError", "AttributeError"),
             r"quanto|quantization_config"),
}  # fmt: skip


def known_rejection(
    tf_version: str,
    torch_version: str,
    job: Job,
    *,
    has_accelerate: bool,
    has_cuda: bool,
    exc: BaseException | None = None,
) -> str | None:
    """Why this version refuses the combination, or None: the versions must predict a refusal
    and `exc` (when given) must be that refusal's exception type and message."""
    tf = parse_version(tf_version)
    torch_v = parse_version(torch_version)
    dm = job.get("device_map")
    # Every refusal the versions and the scenario predict, in this order.
    predicted = {
        "lcmu": dm is not None and job.get("low_cpu_mem_usage") is False and tf < (4, 51),
        "cve": job["checkpoint_format"] == "bin" and tf >= (4, 52) and torch_v < (2, 6),
        "accelerate": dm is not None and not has_accelerate,
        "cuda": dm == "cuda" and not has_cuda,
        "int8": job.get("quantization", "none") != "none",
        "attn": job.get("attn_implementation", "default") != "default",
    }
    for key in (k for k, hit in predicted.items() if hit):
        reason, types, pattern = _REFUSALS[key]
        if exc is None:
            return reason
        names = {k.__name__ for k in type(exc).__mro__}
        if names.intersection(types) and re.search(pattern, str(exc), re.IGNORECASE):
            return reason
    return None  # another failure in a known combination: an error, not a refusal


def guard_torch_load(torch_mod: Any) -> dict[str, Any]:
    """Make pickle checkpoints load with weights_only=True wherever torch supports it.

    `pickle_load` ends "unsafe" when torch has no weights_only or a caller turned it off.
    """
    import inspect  # noqa: PLC0415 - only runs with .bin checkpoints

    state: dict[str, Any] = {"pickle_load": "weights_only"}
    original = torch_mod.load
    try:
        supported = "weights_only" in inspect.signature(original).parameters
    except (TypeError, ValueError):
        supported = False
    if not supported:
        state["pickle_load"] = "unsafe"
        return state

    def load(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("weights_only") is False:
            state["pickle_load"] = "unsafe"
        else:
            kwargs["weights_only"] = True
        return original(*args, **kwargs)

    torch_mod.load = load
    return state


# ---------------------------------------------------------------- environment


def _dist_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _proc_line(path: str, prefix: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return next((line for line in fh if line.startswith(prefix)), None)
    except OSError:
        return None


def environment() -> Environment:
    versions = {
        **{name: _dist_version(name) for name in _DISTS},
        "python": platform.python_version(),
    }
    cpu = _proc_line("/proc/cpuinfo", "model name")
    cpu_name = cpu.split(":", 1)[1].strip() if cpu else platform.processor() or platform.machine()
    mem = _proc_line("/proc/meminfo", "MemTotal:")
    return {
        "versions": versions,
        "machine": {
            "cpu": cpu_name,
            "cores": os.cpu_count(),
            "mem_total_mb": int(mem.split()[1]) / 1024 if mem else None,
            "os": platform.platform(),
            "arch": platform.machine(),
        },
    }


def installed_packages() -> list[str]:
    seen = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            seen[name.lower()] = f"{name}=={dist.version}"
    return sorted(seen.values(), key=str.lower)


# ---------------------------------------------------------------- one run


class _PhaseStreamer:
    """Ends the first-token phase at the first new token, inside the same generate call."""

    def __init__(self, on_first: Any) -> None:
        self._calls = 0
        self._on_first = on_first
        self.first_at: float | None = None
        self.decode_from: float | None = None  # after the phase switch: not decode time

    def put(self, value: Any) -> None:  # noqa: ARG002 - the streamer protocol
        self._calls += 1
        # The first put() is the prompt; the second is the first new token.
        if self._calls == 2:
            self.first_at = time.perf_counter()
            self._on_first()
            self.decode_from = time.perf_counter()

    def end(self) -> None:
        return


class Run:
    def __init__(self, job: Job) -> None:
        self.job = job
        self.memory = Memory()
        self.sampler = AnonSampler(float(job.get("sample_interval_s", 0.002)))
        self.phases: dict[str, Phase] = {}
        self.cuda = False
        self.torch: Any = None
        self._cpu_started = 0.0

    def announce(self, phase: str) -> None:
        """Say which phase runs now, so a kill or a timeout can be placed in it."""
        path = self.job.get("phase_file")
        if not path:
            return
        try:
            with open(path, "w", encoding="ascii") as fh:
                fh.write(f"{os.getpid()} {phase}\n")
        except OSError:
            pass

    def _begin(self, phase: str) -> float:
        self.announce(phase)
        self.memory.reset()
        self.sampler.take_peak()
        if self.cuda:
            self.torch.cuda.synchronize()
            self.torch.cuda.reset_peak_memory_stats()
        self._cpu_started = time.process_time()
        return time.perf_counter()

    def _end(self, name: str, started: float) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        cpu_s = time.process_time() - self._cpu_started  # user + sys, every thread
        phase = cast("Phase", {"seconds": seconds, "cpu_s": cpu_s, **self.memory.snapshot()})
        phase["anon_peak_mb"] = self.sampler.take_peak()
        if self.cuda:
            phase["cuda_alloc_peak_mb"] = self.torch.cuda.max_memory_allocated() / MIB
            phase["cuda_reserved_peak_mb"] = self.torch.cuda.max_memory_reserved() / MIB
        self.phases[name] = phase

    def execute(
        self,
        import_s: float | None,
        import_phase: Phase | None,
        stack_env: Environment,
    ) -> Result:
        import torch  # noqa: PLC0415 - imported already in both modes; cheap here
        import transformers  # noqa: PLC0415
        from transformers import AutoConfig, AutoTokenizer  # noqa: PLC0415

        self.torch = torch
        job = self.job
        # The process's environment, read once; a copy, because a GPU name may be added.
        env: Environment = {**stack_env, "machine": dict(stack_env["machine"])}
        result: Result = {
            "worker_api": WORKER_API,
            "env": env,
            "memory_method": self.memory.method,
            "import_s": import_s,
            "pid": os.getpid(),
            "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        }
        result["threads"], result["interop_threads"] = _pin_threads(torch, job)
        if import_phase is not None:
            self.phases["import"] = import_phase
        self.cuda = job.get("device_map") in ("cuda", "auto") and bool(torch.cuda.is_available())
        if self.cuda:
            env["machine"]["gpu"] = torch.cuda.get_device_name(0)
        has_accelerate = env["versions"].get("accelerate") is not None
        tf_version = transformers.__version__
        kwargs = load_kwargs(tf_version, job, torch, transformers)
        # Copies: accelerate rewrites max_memory in place.
        result["load_kwargs"] = {
            k: dict(v) if isinstance(v, dict) else v if isinstance(v, (str, bool, int)) else str(v)
            for k, v in kwargs.items()
        }

        refused = remote_code_refusal(job)
        if refused:  # before any of the model's files is read by the library
            result["status"], result["message"] = "error", refused
            result["reason"] = "remote code refused"
            return result
        self.announce("tokenizer")
        hub = {k: v for k, v in kwargs.items() if k in ("revision", "trust_remote_code")}
        # The class comes from the model's own config: no code here per architecture.
        config = AutoConfig.from_pretrained(job["model_path"], **hub)
        seq2seq = bool(getattr(config, "is_encoder_decoder", False))
        auto = getattr(transformers, "AutoModelForSeq2SeqLM" if seq2seq else "AutoModelForCausalLM")
        result["model_type"] = getattr(config, "model_type", None)
        result["architectures"] = [str(a) for a in getattr(config, "architectures", None) or []]
        result["model_import_s"] = _import_model_class(auto, config)
        tokenizer = AutoTokenizer.from_pretrained(job["tokenizer_path"], **hub)
        prompts = list(job["prompts"])
        input_ids = [tokenizer(p)["input_ids"] for p in prompts]
        batches = batched(tokenizer, prompts, int(job.get("batch") or 1))
        gc.collect()
        self.sampler.start()
        result["baseline"] = self.memory.snapshot()

        pickle_state = guard_torch_load(torch) if job["checkpoint_format"] == "bin" else None
        refused = pickle_refusal(pickle_state, job, torch.__version__)
        if refused:  # before the checkpoint's pickle is opened
            result["status"], result["message"] = "error", refused
            result["reason"], result["pickle_load"] = "unsafe pickle refused", "unsafe"
            return result
        network = count_connections()
        started = self._begin("load")
        failure: Exception | None = None
        try:
            model = auto.from_pretrained(job["model_path"], **kwargs)
        except Exception as exc:
            failure, failed_at = exc, traceback.format_exc(limit=8)
        self._end("load", started)
        # A hub download or retry inside from_pretrained is timed as loading: say so.
        result["load_network_attempts"] = network[0]
        if pickle_state is not None:
            result["pickle_load"] = pickle_state["pickle_load"]
        if failure is not None:
            reason = known_rejection(
                tf_version, torch.__version__, job, has_accelerate=has_accelerate,
                has_cuda=self.cuda, exc=failure,
            )  # fmt: skip
            result["phases"] = self.phases
            result["status"] = "unsupported" if reason else "error"
            result["message"] = _one_line(failure)
            result["reason"] = reason
            result["traceback"] = failed_at
            if pickle_state is not None and "weights only load failed" in result["message"].lower():
                # The checkpoint's pickle wanted to run code: torch refused to.
                result["reason"] = "unsafe pickle refused by torch.load(weights_only=True)"
            return result
        model.eval()
        params = {id(p): p for p in model.parameters()}
        result["params"] = sum(p.numel() for p in params.values())
        result["param_bytes"] = sum(stored_bytes(p) for p in params.values())
        plain = sum(p.numel() * p.element_size() for p in params.values())
        if job.get("quantization", "none") != "none" and result["param_bytes"] >= plain:
            note = "the library quantizes torch.nn.Linear layers, and this model has none it took"
            result["warnings"] = [f"{job['quantization']} quantized none of the weights: {note}"]
        placed = getattr(model, "hf_device_map", None) or {}
        on_disk = tuple(name for name, where in placed.items() if where == "disk")
        if on_disk:
            result["offloaded_params"] = sum(
                p.numel() for name, p in model.named_parameters()
                if any(d in ("", name) or name.startswith(d + ".") for d in on_disk)
            )  # fmt: skip
        result["hf_device_map"] = placed or None
        attn = getattr(getattr(model, "config", None), "_attn_implementation", None)
        result["attn_implementation"] = attn if isinstance(attn, str) else None
        device = next(iter(params.values())).device
        if device.type == "meta":  # offloaded to disk: accelerate runs it on the main device
            on_gpu = any(isinstance(v, int) or "cuda" in str(v) for v in placed.values())
            device = torch.device("cuda:0" if on_gpu else "cpu")

        # Greedy, for the measured batches and the warm repeat alike.
        greedy = {"max_new_tokens": int(job["max_new_tokens"]), "do_sample": False,
                  "num_beams": 1, "pad_token_id": tokenizer.pad_token_id}  # fmt: skip
        stop = _eos_ids(model)
        outputs: list[Output] = []
        first: dict[str, Any] = {}  # the first batch's inputs, on the device: generated warm
        started = self._begin("first_token")
        gen_started = started

        def first_token() -> None:
            nonlocal gen_started
            self._end("first_token", started)
            gen_started = self._begin("generate")

        streamer = _PhaseStreamer(first_token)
        with torch.inference_mode():
            for index, (rows, enc) in enumerate(batches):
                inputs = {k: v.to(device) for k, v in enc.items()}
                first = first or inputs
                t0 = time.perf_counter()
                out = model.generate(
                    **inputs,
                    **greedy,
                    output_scores=True,
                    return_dict_in_generate=True,
                    streamer=streamer if index == 0 else None,
                )
                t1 = time.perf_counter()
                # One top-2 over all steps and rows at once: [steps, rows, 2].
                top = torch.topk(torch.stack(list(out.scores)).float(), 2)
                gaps = top.values[..., 0] - top.values[..., 1]
                for row, prompt_index in enumerate(rows):
                    if prompt_index is None:
                        continue  # a row that only fills the last batch
                    # The last tokens, one per score: a decoder-only model's sequence starts
                    # with the (left-padded) prompt, an encoder-decoder's with its start token.
                    new_ids = out.sequences[row, -len(out.scores) :].tolist()
                    steps = _until_stop(new_ids, stop)
                    outputs.append(
                        {
                            "prompt": prompts[prompt_index],
                            "input_ids": input_ids[prompt_index],
                            "ids": new_ids[:steps],
                            "margins": [round(m, 6) for m in gaps[:steps, row].tolist()],
                            "runner_up": top.indices[:steps, row, 1].tolist(),
                            "seconds": t1 - t0,
                            "text": "",  # decoded after the measured phases
                            "tokens": [],
                        }
                    )
                if index == 0:
                    first_at = streamer.first_at or t1
                    result["ttft_s"] = first_at - t0
                    result["tokens_per_s"] = _rate(len(out.scores), streamer.decode_from, t1)
                    result["new_tokens"] = len(out.scores)
        if "first_token" not in self.phases:
            # No token was streamed (e.g. an immediate EOS): the phases collapse.
            self._end("first_token", started)
            gen_started = self._begin("generate")
        self._end("generate", gen_started)
        self.sampler.stop()
        # The first prompt again, warmed: the decode rate without first-call costs. A phase of
        # its own, after the measured ones, so the peaks above never include it.
        started = self._begin("warm")
        with torch.inference_mode():
            warm = _PhaseStreamer(lambda: None)
            model.generate(**first, **greedy, streamer=warm)
            ended = time.perf_counter()
        self._end("warm", started)
        result["warm_tokens_per_s"] = _rate(result["new_tokens"], warm.decode_from, ended)
        # Decoding is bookkeeping, not generation: outside the measured phases.
        for output in outputs:
            output["text"] = tokenizer.decode(output["ids"], skip_special_tokens=True)
            output["tokens"] = [tokenizer.decode([i]) for i in output["ids"]]
        result["phases"] = self.phases
        result["outputs"] = outputs
        result["status"] = "ok"
        result["message"] = ""
        result["sampler_samples"] = self.sampler.samples
        return result


def batched(tokenizer: Any, prompts: list[str], size: int) -> list[tuple[list[Any], Any]]:
    """The prompts in batches of `size`, padded on the left with an attention mask. The last
    batch is filled up with the first prompts again (rows marked None), so every batch has
    `size` rows; a batch of one is never padded."""
    if tokenizer.pad_token is None:  # GPT-2-style tokenizers have none: pad with EOS
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.convert_ids_to_tokens(0)
    tokenizer.padding_side = "left"
    out = []
    for start in range(0, len(prompts), size):
        rows: list[Any] = list(range(start, min(start + size, len(prompts))))
        texts = [prompts[i] for i in rows]
        while size > 1 and len(texts) < size:
            texts.append(prompts[(len(texts) - len(rows)) % len(prompts)])
            rows.append(None)
        out.append((rows, tokenizer(texts, return_tensors="pt", padding=size > 1)))
    return out


def _eos_ids(model: Any) -> set[int]:
    found = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    return set(found) if isinstance(found, list) else ({found} if isinstance(found, int) else set())


def _until_stop(ids: list[int], stop: set[int]) -> int:
    """Steps up to and including the first end-of-sequence token: a row that ended early in a
    batch is padded after it, and those pads are not output."""
    return next((i + 1 for i, t in enumerate(ids) if t in stop), len(ids))


def stored_bytes(tensor: Any) -> int:
    """The bytes a tensor stores; a quantized tensor subclass: those of its inner tensors."""
    flatten = getattr(tensor, "__tensor_flatten__", None)
    if flatten is not None:
        try:
            names, _ = flatten()
            return sum(stored_bytes(getattr(tensor, n)) for n in names)
        except Exception:  # noqa: S110 - not a wrapper after all: count it plainly
            pass
    return int(tensor.numel() * tensor.element_size())


def count_connections() -> list[int]:
    """Count this process's network connection attempts from now on (TCP, UDP, IPv4/6)."""
    import socket  # noqa: PLC0415 - only here

    counter = [0]

    def counted(original: Any) -> Any:
        def call(self: socket.socket, address: Any) -> Any:
            if self.family in (socket.AF_INET, socket.AF_INET6):
                counter[0] += 1
            return original(self, address)

        return call

    for name in ("connect", "connect_ex"):
        setattr(socket.socket, name, counted(getattr(socket.socket, name)))
    return counter


def pickle_refusal(state: dict[str, Any] | None, job: Job, torch_version: str) -> str | None:
    """Why a .bin checkpoint may not be unpickled: this torch cannot refuse code in a pickle
    (no weights_only) and the matrix does not declare `allow_unsafe_pickle: true`."""
    if state is None or state["pickle_load"] != "unsafe" or job.get("allow_unsafe_pickle"):
        return None
    return (f"torch {torch_version} cannot load a .bin checkpoint without running the code its "
            "pickle names (no torch.load(weights_only=True)); it runs only with "
            "allow_unsafe_pickle: true in the model's matrix entry")  # fmt: skip


def remote_code_refusal(job: Job) -> str | None:
    """Why a model folder's custom code may not run: its config names code (`auto_map`) and
    the matrix does not declare `trust_remote_code: true`. None where nothing is refused."""
    if job.get("trust_remote_code"):
        return None
    try:
        with open(os.path.join(job["model_path"], "config.json"), encoding="utf-8") as fh:
            auto_map = json.load(fh).get("auto_map")
    except (OSError, ValueError, AttributeError):
        return None  # a hub id, or no readable config: the library decides
    if not auto_map:
        return None
    names = ", ".join(sorted({str(v).split("--")[-1] for v in auto_map.values()}))
    return (f"the model's config names custom code ({names}); it runs only with "
            "trust_remote_code: true in the model's matrix entry")  # fmt: skip


def _import_model_class(auto: Any, config: Any) -> float:
    """Import the model's own modeling module now, before the baseline: transformers imports
    it lazily inside from_pretrained, where it would be charged to loading."""
    started = time.perf_counter()
    try:  # noqa: SIM105 - contextlib would be one more import in the worker
        auto._model_mapping[type(config)]  # noqa: SLF001 - the lazy mapping imports the module
    except Exception:  # noqa: S110 - remote code or an unknown config: from_pretrained says
        pass
    return time.perf_counter() - started


def _rate(new_tokens: int, decode_from: float | None, ended: float) -> float | None:
    """Tokens after the first, per second of decoding."""
    rest = new_tokens - 1
    if decode_from is None or rest <= 0 or ended <= decode_from:
        return None
    return rest / (ended - decode_from)


def _pin_threads(torch_mod: Any, job: Job) -> tuple[int, int]:
    """Set the intra- and inter-op thread counts the job names; return what torch uses."""
    if job.get("threads"):
        torch_mod.set_num_threads(int(job["threads"]))
    if job.get("interop_threads"):
        try:  # noqa: SIM105 - contextlib would be one more import in the worker
            torch_mod.set_num_interop_threads(int(job["interop_threads"]))
        except RuntimeError:  # already set in this process (a fork-server child): recorded
            pass
    return torch_mod.get_num_threads(), torch_mod.get_num_interop_threads()


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return " ".join(text.split())[:2000]


def _error(exc: BaseException, prefix: str = "") -> Result:
    return {
        "worker_api": WORKER_API,
        "status": "error",
        "message": prefix + _one_line(exc),
        "traceback": traceback.format_exc(limit=8),
    }


def _write_json(path: str, data: Mapping[str, object]) -> None:
    # A handoff to the host, which reads it at once and fsyncs the record itself: the
    # rename is enough to never show a half-written file, an fsync here would only cost.
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, default=str)
    os.replace(tmp, path)


def run_job(
    job_path: str,
    out_path: str,
    import_s: float | None,
    import_phase: Phase | None,
    *,
    prefault: dict[str, Any] | None = None,
    stack_env: Environment | None = None,
) -> int:
    with open(job_path, encoding="utf-8") as fh:
        job = json.load(fh)
    try:
        result = Run(job).execute(import_s, import_phase, stack_env or environment())
    except Exception as exc:
        result = _error(exc)
    if prefault is not None:
        result["prefault"] = prefault
    _write_json(out_path, result)
    return 0


# ---------------------------------------------------------------- modes


def _import_stack() -> float:
    """Import what a run needs, in both modes, before any baseline is taken.

    Some versions import large modules lazily inside the first from_pretrained or
    generate (transformers 4.46 imports torch._dynamo, torch.onnx and ~90 config modules:
    about 0.9 s and 40 MiB). Those are import costs, reported in import_s; left lazy they
    would be charged to the model's load and first token.
    """
    started = time.perf_counter()
    import importlib.util  # noqa: PLC0415

    import torch  # noqa: F401, PLC0415
    import transformers  # noqa: PLC0415

    for name in ("AutoConfig", "AutoModelForCausalLM", "AutoModelForSeq2SeqLM", "AutoTokenizer"):
        getattr(transformers, name, None)
    for module in ("accelerate", "torch._dynamo", "transformers.generation.utils"):
        try:
            if importlib.util.find_spec(module) is not None:
                importlib.import_module(module)
        except Exception:  # noqa: S112, PERF203 - a missing optional module only means less warming
            continue
    try:
        # Resolving the auto mapping imports every config module on 4.x.
        for auto in (transformers.AutoModelForCausalLM, transformers.AutoModelForSeq2SeqLM):
            list(auto._model_mapping.keys())  # noqa: SLF001
    except Exception:  # noqa: S110 - private API; absent on some versions
        pass
    return time.perf_counter() - started


def cmd_run(args: argparse.Namespace) -> int:
    memory = Memory()
    start_snapshot = memory.snapshot()
    try:
        import_s = _import_stack()
    except Exception as exc:
        # A stack that installs but cannot import is a record, not a crash.
        _write_json(args.out, _error(exc, "import failed: "))
        return 0
    phase = cast("Phase", {"seconds": import_s, **memory.snapshot()})
    phase["baseline_rss_mb"] = start_snapshot["rss_mb"]
    return run_job(args.job, args.out, import_s, phase)


def cmd_serve(args: argparse.Namespace) -> int:  # noqa: ARG001 - same signature as the others
    # Replies go on a private copy of stdout; the libraries' own prints go to stderr.
    control = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    import_s = _import_stack()
    stack_env = environment()  # once for every child, not once per run
    control.write(json.dumps({"ready": True, "import_s": import_s, "pid": os.getpid()}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if request.get("quit"):
            break
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.setpgid(0, 0)
                signal.signal(signal.SIGINT, signal.SIG_DFL)
                t0 = time.perf_counter()
                pages, warning = prefault_like(os.getppid())
                prefault: dict[str, Any] = {"pages": pages}
                prefault["seconds"] = round(time.perf_counter() - t0, 4)
                if warning:
                    prefault["warning"] = warning
                job, out = request["job"], request["out"]
                code = run_job(job, out, import_s, None, prefault=prefault, stack_env=stack_env)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        control.write(json.dumps({"started": pid}) + "\n")
        code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])  # -N: killed by signal N
        reply = {"pid": pid, "signal": -code} if code < 0 else {"pid": pid, "exit": code}
        control.write(json.dumps(reply) + "\n")
    control.close()
    sys.stderr.flush()
    # Done: skip the interpreter's teardown of torch and transformers (about 1.5 s a stack).
    os._exit(0)


def cmd_env(args: argparse.Namespace) -> int:
    data = {**environment(), "packages": installed_packages(), "executable": sys.executable}
    _write_json(args.out, data)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="worker")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, flags in (("env", ("--out",)), ("run", ("--job", "--out")), ("serve", ())):
        command = sub.add_parser(name)
        for flag in flags:
            command.add_argument(flag, required=True)
    args = parser.parse_args(argv)
    return {"env": cmd_env, "run": cmd_run, "serve": cmd_serve}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
