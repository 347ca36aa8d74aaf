"""Run the attempts of one stack: workers started, timeouts and caps enforced, fit searched.
Every (cell, repeat) comes back as one `Attempted`, a crash, hang or kill included; records
are the pipeline's job (harness.measure.runner)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

from harness import paths
from harness import records as rec
from harness.measure import budget
from harness.measure import fit as fit_mod
from harness.measure.models import ModelPaths, offload_cpu_share_mb, resolve_model
from harness.measure.spawn import (
    ISOLATED,
    Exit,
    ForkServer,
    WorkerStartError,
    classify,
    log_tail,
    phase_note,
    run_fresh,
    worker_env,
)
from harness.metrics import MIB

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from harness.config.matrix import Cell, Stack
    from harness.golden.store import Judge
    from harness.metrics import Status
    from harness.target.contract import Environment, Job, Result

FIT_FLOOR_MB = 64.0
# A capped probe has this many times the uncapped run's time (at least FIT_PROBE_MIN_S): a
# cap just above the need can thrash for the whole timeout instead of being killed.
FIT_PROBE_FACTOR, FIT_PROBE_MIN_S = 5.0, 60.0
Classified = tuple["Status", str, "Result"]


@dataclass(frozen=True)
class RunConfig:
    run_id: str
    run_dir: Path
    mode: str
    timeout_s: float
    repeats: int
    cache_dir: Path
    sample_interval_s: float = 0.002
    judge: Judge | None = None
    resume: bool = False
    # Bytes; runs go in fresh interpreters under a hard cap (see harness/measure/budget.py).
    memory_budget: int | None = None
    fit: bool = False
    threads: int | None = None  # None: the cores this process may use
    interop_threads: int | None = None

    def thread_counts(self) -> tuple[int, int]:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        return self.threads or cores or 1, self.interop_threads or cores or 1


@dataclass(frozen=True)
class Attempted:
    """One (cell, repeat) as it ended; `fit` is its fit-search record under --fit."""

    cell: Cell
    repeat: int
    outcome: rec.Outcome
    stack_env: Environment | None
    fit: dict[str, Any] | None = None


class FitError(Exception):
    """A capped run failed for another reason than the cap."""


def stack_environment(python: Path, env: dict[str, str], raw: Path, stack: Stack) -> Environment:
    """Versions and the frozen package list, read inside the stack's own environment."""
    out = raw / f"{stack.id}.env.json"
    proc = subprocess.run(
        [str(python), *ISOLATED, str(paths.WORKER), "env", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    if proc.returncode != 0 or not out.exists():
        raise WorkerStartError(f"could not read the environment: {proc.stderr.strip()[-800:]}")
    data = json.loads(out.read_text(encoding="utf-8"))
    freeze = raw / f"{stack.id}.freeze.txt"
    freeze.write_text("\n".join(data["packages"]) + "\n", encoding="utf-8")
    return cast("Environment", data)


def job_for(cell: Cell, where: ModelPaths, cfg: RunConfig, phase_file: Path) -> Job:
    s, m = cell.scenario, cell.model
    threads, interop_threads = cfg.thread_counts()
    job: Job = {
        "model_path": where.model, "tokenizer_path": where.tokenizer, "prompts": list(m.prompts),
        "low_cpu_mem_usage": s.low_cpu_mem_usage, "device_map": s.device_map, "dtype": s.dtype,
        "checkpoint_format": s.checkpoint_format, "max_new_tokens": s.max_new_tokens,
        # A revision resolved in the cache is a local folder already: nothing to pass.
        "trust_remote_code": m.trust_remote_code,
        "revision": None if where.revision else m.revision,
        "sample_interval_s": cfg.sample_interval_s,
        "threads": threads, "interop_threads": interop_threads,
        # "<pid> <phase>" of the run in flight, for users watching and for messages.
        "phase_file": str(phase_file),
        "batch": s.batch, "attn_implementation": s.attn_implementation,
        "quantization": s.quantization, "offload": s.offload,
        "allow_unsafe_pickle": m.allow_unsafe_pickle,
    }  # fmt: skip
    if s.offload == "disk":
        # In the run folder, emptied after each run; under a budget the CPU keeps 40% of it.
        job["offload_folder"] = str(offload_folder(cfg, cell))
        if cfg.memory_budget:
            job["max_memory_mb"] = cfg.memory_budget * 0.4 / MIB
        else:
            job["max_memory_mb"] = offload_cpu_share_mb(where.model, s.checkpoint_format)
    return job


def offload_folder(cfg: RunConfig, cell: Cell) -> Path:
    return cfg.run_dir / "offload" / cell.stack.id


@dataclass
class _Stack:
    """One stack's attempts: what they share (interpreter, log, server, models), and each run
    of a prepared job, in the fork-server or fresh, capped or not."""

    python: Path
    env: dict[str, str]
    cfg: RunConfig
    log: IO[str]
    log_path: Path
    tmp: Path
    phase_file: Path
    stack_env: Environment
    server: ForkServer | None = None
    prepared: dict[tuple[str, str], ModelPaths | str] = field(default_factory=dict)

    def where(self, cell: Cell) -> ModelPaths | str:
        """The model's folders, or why it could not be prepared (once per model and format)."""
        key = (cell.model.id, cell.scenario.checkpoint_format)
        if key not in self.prepared:
            try:
                self.prepared[key] = resolve_model(
                    cell.model, key[1], self.python, self.cfg.cache_dir, self.log
                )
            except (subprocess.CalledProcessError, OSError) as exc:
                self.prepared[key] = (
                    f"could not prepare model {cell.model.id}: {exc}; see {self.log_path}"
                )
        return self.prepared[key]

    def attempt(self, index: int, repeat: int, cell: Cell, where: ModelPaths) -> Attempted:
        cfg = self.cfg
        self.phase_file.unlink(missing_ok=True)
        job_path = self.tmp / f"job-{index}.json"
        out_path = self.tmp / f"out-{index}.json"
        job = job_for(cell, where, cfg, self.phase_file)
        job_path.write_text(json.dumps(job), encoding="utf-8")
        self.log.write(f"--- {cell.id} repeat {repeat}\n")
        self.log.flush()
        started, started_at = time.monotonic(), round(time.time(), 3)
        if self.server is not None:
            status, message, result = self.in_server(self.server, job_path, out_path)
        else:
            status, message, result = self.fresh(job_path, out_path, cfg.memory_budget)
        wall = time.monotonic() - started
        if cell.scenario.offload == "disk":
            shutil.rmtree(offload_folder(cfg, cell), ignore_errors=True)  # gigabytes, per run
        if where.revision:
            result["resolved_revision"] = where.revision
        found = where.shards(cell.scenario.checkpoint_format)
        if found is not None:
            result["shards"], result["largest_shard_mb"] = found
        outcome = rec.Outcome(status, message, result, wall, started_at)
        fit = None
        if cfg.fit and status == "ok":  # --fit implies fresh runs: `wall` includes the import
            fit = self.fit(job_path, out_path, cell, result, wall)
        return Attempted(cell, repeat, outcome, self.stack_env, fit)

    def in_server(self, server: ForkServer, job: Path, out: Path) -> Classified:
        timeout_s = self.cfg.timeout_s
        try:
            exit_ = server.run(job, out, timeout_s)
        except WorkerStartError:
            exit_ = Exit(note=f"the fork-server could not restart: {log_tail(self.log_path)}")
        status, message, result = classify(exit_, out, timeout_s, self.phase_file)
        if result and result.get("import_s") is None:
            result["import_s"] = server.import_s
        return status, message, result

    def fresh(
        self, job: Path, out: Path, cap: int | None, timeout_s: float | None = None
    ) -> Classified:
        timeout_s = timeout_s or self.cfg.timeout_s
        out.unlink(missing_ok=True)
        if cap is None:
            exit_ = run_fresh(self.python, env=self.env, log=self.log, job=job, out=out,
                              timeout_s=timeout_s)  # fmt: skip
            return classify(exit_, out, timeout_s, self.phase_file)
        model_path = json.loads(job.read_text(encoding="utf-8"))["model_path"]
        budget.evict_page_cache(Path(model_path))  # no page charged to another cgroup
        with budget.Budget.create(cap, job.stem) as limit:
            exit_ = run_fresh(self.python, env=self.env, log=self.log, job=job, out=out,
                              timeout_s=timeout_s, budget=limit)  # fmt: skip
            limit.stop()
            reason = budget.classify_kill(limit, exit_.signal, timed_out=exit_.timed_out)
            refaults = limit.refaults() if exit_.timed_out else 0  # the group goes with the block
        status, message, result = classify(exit_, out, timeout_s, self.phase_file)
        result["budget_method"] = limit.method
        result["budget_mb"] = limit.budget_mb
        cap_note = f"{cap / MIB:.0f} MiB, {limit.method}"
        if status == "killed" and reason:
            message = f"killed by the memory budget ({cap_note}){phase_note(self.phase_file)}"
            result["reason"] = reason
        elif status == "timeout" and reason:
            message += f"; thrashing at the memory budget ({cap_note}: {refaults:,} refaults)"
            result["reason"] = reason
        return status, message, result

    def fit(
        self, job: Path, out: Path, cell: Cell, uncapped: Result, took: float
    ) -> dict[str, Any]:
        """The fit record: the smallest cap that still loads and generates, within 5%, in at
        most FIT_PROBE_FACTOR times the uncapped run's time (a probe that thrashes fails)."""
        cfg, s = self.cfg, cell.scenario
        base: dict[str, Any] = {
            "schema_version": rec.SCHEMA_VERSION, "run_id": cfg.run_id, "stack_id": cell.stack.id,
            "cell_id": cell.id, "model": cell.model.id, "scenario": s.id,
            "low_cpu_mem_usage": s.low_cpu_mem_usage, "device_map": s.device_map,
            "dtype": s.dtype, "checkpoint_format": s.checkpoint_format,
            "transformers_version": uncapped.get("env", {}).get("versions", {}).get("transformers"),
        }  # fmt: skip
        peaks = [p.get("hwm_mb") or 0.0 for p in (uncapped.get("phases") or {}).values()]
        # The uncapped peak bounds it from above; from below only a floor does: a cgroup can
        # reclaim clean file pages (an mmapped checkpoint), so a run may fit under its peak RSS.
        peak = max([*peaks, FIT_FLOOR_MB]) * MIB
        probe_s = round(min(cfg.timeout_s, max(FIT_PROBE_MIN_S, FIT_PROBE_FACTOR * took)), 1)
        base["fit_probe_s"] = probe_s
        methods: list[str] = []

        def run_once(cap: int) -> bool:
            status, message, result = self.fresh(job, out, cap, probe_s)
            methods.append(result["budget_method"])
            if status == "ok":
                return True
            if result.get("reason") == "memory_budget":
                return False
            raise FitError(f"{status} at a {cap / MIB:.0f} MiB cap: {message}")

        try:
            found = fit_mod.fit(run_once, int(FIT_FLOOR_MB * MIB), int(peak * 1.5))
        except FitError as exc:
            return {**base, "fit_status": "error", "message": str(exc)}
        method = methods[-1] if methods else None
        return {**base, **found.to_record(), "budget_method": method, "message": ""}


def attempts(
    stack: Stack,
    todo: Sequence[tuple[int, Cell]],
    python: Path,
    cfg: RunConfig,
    *,
    starting: Callable[[Cell, int], None] | None = None,
) -> Iterator[Attempted]:
    """Run each (repeat, cell) of `todo` in order, yielding one Attempted for each."""
    raw = cfg.run_dir / "raw"
    env = worker_env(python, hub=any(c.model.source == "hub" for _, c in todo))
    log_path = raw / f"{stack.id}.log"
    phase_file = raw / f"{stack.id}.phase"

    def failed(message: str, stack_env: Environment | None) -> Iterator[Attempted]:
        for repeat, cell in todo:
            yield Attempted(cell, repeat, rec.Outcome("error", message, {}, 0.0), stack_env)

    with (
        log_path.open("a", encoding="utf-8") as log,
        tempfile.TemporaryDirectory(prefix="harness-") as tmp,
    ):
        try:
            stack_env = stack_environment(python, env, raw, stack)
        except (WorkerStartError, subprocess.TimeoutExpired, OSError) as exc:
            yield from failed(str(exc), None)
            return
        run = _Stack(python, env, cfg, log, log_path, Path(tmp), phase_file, stack_env)
        if cfg.mode == "forkserver":
            run.server = ForkServer(python, env, log, start_timeout_s=cfg.timeout_s)
            try:
                run.server.start()
            except WorkerStartError:
                log.flush()
                yield from failed(f"import failed: {log_tail(log_path)}", stack_env)
                return
        try:
            for index, (repeat, cell) in enumerate(todo):
                where = run.where(cell)
                if isinstance(where, str):
                    yield Attempted(cell, repeat, rec.Outcome("error", where, {}, 0.0), stack_env)
                    continue
                if starting is not None:
                    starting(cell, repeat)
                yield run.attempt(index, repeat, cell, where)
        finally:
            if run.server is not None:
                run.server.close()
            phase_file.unlink(missing_ok=True)
