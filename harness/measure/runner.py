"""Host side: starts workers in a stack's environment, enforces timeouts, writes records.

Nothing one cell does can stop the others: every outcome, a crash, a hang or a kill,
becomes a record, and the run goes on.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from harness import paths
from harness import records as rec
from harness.golden import store as golden
from harness.measure import budget
from harness.measure import fit as fit_mod
from harness.measure.spawn import (
    FIXTURES,
    ISOLATED,
    PRESETS,
    WORKER,
    Exit,
    ForkServer,
    WorkerStartError,
    classify,
    log_tail,
    phase_note,
    run_fresh,
    worker_env,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from harness.config.matrix import Cell, Model, Stack


@dataclass(frozen=True)
class RunConfig:
    run_id: str
    run_dir: Path
    mode: str
    timeout_s: float
    repeats: int
    cache_dir: Path
    sample_interval_s: float = 0.002
    judge: golden.Judge | None = None
    resume: bool = False
    # Bytes; runs go in fresh interpreters under a hard cap (see harness/budget.py).
    memory_budget: int | None = None
    fit: bool = False


@dataclass(frozen=True)
class Attempt:
    """One worker run of a prepared job, in the fork-server or fresh, capped or not."""

    python: Path
    env: dict[str, str]
    log: IO[str]
    job: Path
    out: Path
    phase_file: Path
    timeout_s: float

    def in_server(self, server: ForkServer, log_path: Path) -> tuple[str, str, dict[str, Any]]:
        try:
            exit_ = server.run(self.job, self.out, self.timeout_s)
        except WorkerStartError:
            exit_ = Exit(note=f"the fork-server could not restart: {log_tail(log_path)}")
        status, message, result = classify(exit_, self.out, self.timeout_s, self.phase_file)
        if result and result.get("import_s") is None:
            result["import_s"] = server.import_s
        return status, message, result

    def fresh(self, cap: int | None) -> tuple[str, str, dict[str, Any]]:
        self.out.unlink(missing_ok=True)
        if cap is None:
            exit_ = run_fresh(self.python, env=self.env, log=self.log, job=self.job,
                              out=self.out, timeout_s=self.timeout_s)  # fmt: skip
            return classify(exit_, self.out, self.timeout_s, self.phase_file)
        with budget.Budget.create(cap, self.job.stem) as limit:
            exit_ = run_fresh(self.python, env=self.env, log=self.log, job=self.job,
                              out=self.out, timeout_s=self.timeout_s, budget=limit)  # fmt: skip
            limit.stop()
            reason = None if exit_.timed_out else budget.classify_kill(limit, exit_.signal)
            fields = limit.record_fields()
        status, message, result = classify(exit_, self.out, self.timeout_s, self.phase_file)
        result = {**result, **fields}
        if status == "killed" and reason:
            method = fields["budget_method"]
            where = phase_note(self.phase_file)
            message = f"killed by the memory budget ({cap / MIB:.0f} MiB, {method}){where}"
            result["reason"] = reason
        return status, message, result

    def fit(self, uncapped: dict[str, Any]) -> tuple[fit_mod.FitResult, str | None]:
        """Smallest cap that still loads and generates, within 5%; and how caps were enforced."""
        peaks = [p.get("hwm_mb") or 0.0 for p in (uncapped.get("phases") or {}).values()]
        # The uncapped whole-process peak bounds it from above; from below only a floor
        # does, because a cgroup can reclaim clean file pages (an mmapped checkpoint) and a
        # run may fit well under its own peak RSS.
        peak = max([*peaks, FIT_FLOOR_MB]) * MIB

        methods: list[str] = []

        def run_once(cap: int) -> bool:
            status, message, result = self.fresh(cap)
            methods.append(result["budget_method"])
            if status == "ok":
                return True
            if result.get("reason") == "memory_budget":
                return False
            raise FitError(f"{status} at a {cap / MIB:.0f} MiB cap: {message}")

        found = fit_mod.fit(run_once, int(FIT_FLOOR_MB * MIB), int(peak * 1.5))
        return found, methods[-1] if methods else None


class FitError(Exception):
    """A capped run failed for another reason than the cap."""


def _fit_record(
    cfg: RunConfig, cell: Cell, run: Attempt, uncapped: dict[str, Any]
) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema_version": rec.SCHEMA_VERSION, "run_id": cfg.run_id, "stack_id": cell.stack.id,
        "cell_id": cell.id, "model": cell.model.id, "scenario": cell.scenario.id,
        "low_cpu_mem_usage": cell.scenario.low_cpu_mem_usage,
        "device_map": cell.scenario.device_map,
        "dtype": cell.scenario.dtype, "checkpoint_format": cell.scenario.checkpoint_format,
        "transformers_version": (uncapped.get("env") or {}).get("versions", {}).get("transformers"),
    }  # fmt: skip
    try:
        found, method = run.fit(uncapped)
    except FitError as exc:
        return {**base, "fit_status": "error", "message": str(exc)}
    return {**base, **found.to_record(), "budget_method": method, "message": ""}


MIB = 1024 * 1024
FIT_FLOOR_MB = 64.0


default_cache_dir = paths.cache_dir


@dataclass(frozen=True)
class ModelPaths:
    model: str
    tokenizer: str


def fixture_dir(name: str) -> Path:
    return FIXTURES / name.replace("-", "_")


def resolve_model(model: Model, fmt: str, python: Path, cache: Path, log: IO[str]) -> ModelPaths:
    """Where from_pretrained should look; builds a preset into the cache on first use."""
    sub = "st" if fmt == "safetensors" else "bin"
    if model.source == "embedded":
        folder = fixture_dir(model.location) / sub
        return ModelPaths(str(folder), str(folder))
    if model.source == "preset":
        folder = cache / "presets" / model.location
        if not (folder / "manifest.json").exists():
            log.write(f"building preset {model.location} into {folder}\n")
            log.flush()
            subprocess.run(
                [
                    str(python), *ISOLATED, str(PRESETS), "build", model.location,
                    "--cache", str(cache / "presets"),
                    "--tokenizer", str(fixture_dir("tiny-gpt2") / "st"),
                ],
                check=True, stdout=log, stderr=log, env=worker_env(python, hub=False),
            )  # fmt: skip
        return ModelPaths(str(folder / sub), str(folder / sub))
    # local paths and hub ids go to from_pretrained as given
    return ModelPaths(model.location, model.location)


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def weight_files(model: Model, cache: Path) -> list[Path]:
    """The files whose hash identifies the model's weights (none for hub ids)."""
    if model.source == "embedded":
        folder = fixture_dir(model.location)
        return [folder / "st" / "model.safetensors", folder / "bin" / "pytorch_model.bin"]
    if model.source == "preset":
        # The .bin is written by whichever torch builds the preset, so its bytes vary with
        # torch's pickle format; the safetensors file is the deterministic one.
        return [cache / "presets" / model.location / "st" / "model.safetensors"]
    if model.source == "local":
        folder = Path(model.location)
        return (
            sorted(p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES)
            if folder.is_dir()
            else []
        )
    return []


def stack_environment(python: Path, env: dict[str, str], raw: Path, stack: Stack) -> dict[str, Any]:
    """Versions and the frozen package list, read inside the stack's own environment."""
    out = raw / f"{stack.id}.env.json"
    proc = subprocess.run(
        [str(python), *ISOLATED, str(WORKER), "env", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    if proc.returncode != 0 or not out.exists():
        raise WorkerStartError(f"could not read the environment: {proc.stderr.strip()[-800:]}")
    data: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    (raw / f"{stack.id}.freeze.txt").write_text(
        "\n".join(data["packages"]) + "\n", encoding="utf-8"
    )
    return data


def run_stack(
    stack: Stack,
    cells: Sequence[Cell],
    python: Path,
    cfg: RunConfig,
    progress: Callable[[int, int, Cell, int, dict[str, Any] | None], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every (cell, repeat) of one stack and append a record for each."""
    cells = [c for c in cells if c.stack.id == stack.id]
    raw = cfg.run_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    jsonl = raw / f"{stack.id}.jsonl"
    hub = any(c.model.source == "hub" for c in cells)
    env = worker_env(python, hub=hub)
    records: list[dict[str, Any]] = []
    # On --resume, (cell, repeat) pairs already on disk are done; an interrupted run wrote
    # nothing for the cell it was in, so exactly the missing ones run again.
    done = (
        {(r["cell_id"], r["repeat"]) for r in rec.read(jsonl)}
        if cfg.resume and jsonl.exists()
        else set()
    )
    total = len(cells) * cfg.repeats - len(done)

    hashes: dict[str, str | None] = {}

    def emit(
        cell: Cell, repeat: int, outcome: rec.Outcome, stack_env: dict[str, Any] | None
    ) -> None:
        record = rec.build_record(
            run_id=cfg.run_id,
            cell=cell,
            repeat=repeat,
            mode=cfg.mode,
            outcome=outcome,
            env=stack_env,
        )
        if outcome.status == "ok":
            if cell.model.id not in hashes:
                hashes[cell.model.id] = golden.weights_sha256(
                    weight_files(cell.model, cfg.cache_dir)
                )
            record["weights_sha256"] = hashes[cell.model.id]
        if cfg.judge is not None:
            record.update(cfg.judge.judge(record))
        rec.append(jsonl, record)
        records.append(record)
        if progress is not None:
            progress(len(records), total, cell, repeat, record)

    def fail_all(
        status: str, message: str, stack_env: dict[str, Any] | None
    ) -> list[dict[str, Any]]:
        for repeat in range(cfg.repeats):
            for cell in cells:
                if (cell.id, repeat) not in done:
                    emit(cell, repeat, rec.Outcome(status, message, {}, 0.0), stack_env)
        return records

    log_path = raw / f"{stack.id}.log"
    with (
        log_path.open("a", encoding="utf-8") as log,
        tempfile.TemporaryDirectory(prefix="harness-") as tmp,
    ):
        try:
            stack_env = stack_environment(python, env, raw, stack)
        except (WorkerStartError, subprocess.TimeoutExpired, OSError) as exc:
            return fail_all("error", str(exc), None)
        server: ForkServer | None = None
        if cfg.mode == "forkserver":
            server = ForkServer(python, env, log, start_timeout_s=cfg.timeout_s)
            try:
                server.start()
            except WorkerStartError:
                log.flush()
                return fail_all("error", f"import failed: {log_tail(log_path)}", stack_env)
        paths: dict[tuple[str, str], ModelPaths | str] = {}
        try:
            # Repeats go round-robin so slow drift of the machine spreads over all cells.
            for repeat in range(cfg.repeats):
                for index, cell in enumerate(cells):
                    if (cell.id, repeat) in done:
                        continue
                    key = (cell.model.id, cell.scenario.checkpoint_format)
                    if key not in paths:
                        try:
                            paths[key] = resolve_model(
                                cell.model,
                                cell.scenario.checkpoint_format,
                                python,
                                cfg.cache_dir,
                                log,
                            )
                        except (subprocess.CalledProcessError, OSError) as exc:
                            paths[key] = (
                                f"could not prepare model {cell.model.id}: {exc}; see {log_path}"
                            )
                    where = paths[key]
                    if isinstance(where, str):
                        emit(cell, repeat, rec.Outcome("error", where, {}, 0.0), stack_env)
                        continue
                    job = {
                        "model_path": where.model,
                        "tokenizer_path": where.tokenizer,
                        "prompts": list(cell.model.prompts),
                        "low_cpu_mem_usage": cell.scenario.low_cpu_mem_usage,
                        "device_map": cell.scenario.device_map,
                        "dtype": cell.scenario.dtype,
                        "checkpoint_format": cell.scenario.checkpoint_format,
                        "max_new_tokens": cell.scenario.max_new_tokens,
                        "trust_remote_code": cell.model.trust_remote_code,
                        "revision": cell.model.revision,
                        "sample_interval_s": cfg.sample_interval_s,
                    }
                    # "<pid> <phase>" of the run in flight, for users watching and for messages.
                    phase_file = raw / f"{stack.id}.phase"
                    phase_file.unlink(missing_ok=True)
                    job["phase_file"] = str(phase_file)
                    job_path = Path(tmp) / f"job-{repeat}-{index}.json"
                    out_path = Path(tmp) / f"out-{repeat}-{index}.json"
                    job_path.write_text(json.dumps(job), encoding="utf-8")
                    if progress is not None:
                        progress(len(records), total, cell, repeat, None)
                    log.write(f"--- {cell.id} repeat {repeat}\n")
                    log.flush()
                    started = time.monotonic()
                    run = Attempt(python, env, log, job_path, out_path, phase_file, cfg.timeout_s)
                    if server is not None:
                        status, message, result = run.in_server(server, log_path)
                    else:
                        status, message, result = run.fresh(cfg.memory_budget)
                    wall = time.monotonic() - started
                    emit(cell, repeat, rec.Outcome(status, message, result, wall), stack_env)
                    if cfg.fit and status == "ok":
                        rec.append(
                            # Apart from raw/: one record per (cell, repeat) stays true there.
                            cfg.run_dir / "fit" / f"{stack.id}.jsonl",
                            _fit_record(cfg, cell, run, result),
                        )
        finally:
            if server is not None:
                server.close()
            (raw / f"{stack.id}.phase").unlink(missing_ok=True)
    return records
