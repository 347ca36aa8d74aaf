"""Measuring one transformers release for a bisect: a fresh uv environment, one cell, records
in <run>/raw/<stack-id>.jsonl; a release this machine already measured is not run again."""

from __future__ import annotations

import dataclasses
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness import metrics, provenance
from harness import records as rec
from harness.config.matrix import Cell, Stack
from harness.measure import envs, runner
from harness.target import worker

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from harness.records import Record


@dataclass(frozen=True)
class Measurement:
    """One release's records of the cell, reduced to what the metrics look at."""

    version: str
    status: str  # the worst over the repeats
    message: str
    value: float | None  # the metric's median over ok repeats (numeric metrics)
    output: tuple[tuple[int, ...], ...] | None  # the ids of the first ok repeat
    runs: int
    cached: bool
    seconds: float

    def show(self, metric: str, *, brief: bool = False) -> str:
        if metric == "status" or self.status != "ok":
            text = self.status
            if brief or not self.message or text == "ok":
                return text
            return f"{text} ({self.message[:90]})"
        if metric == "output":
            first = list(self.output[0][:6]) if self.output else []
            return f"ok, ids {first}..."
        return f"{metric} {self.value:.4g}" if self.value is not None else f"{metric} -"


def reduce(
    version: str, records: Sequence[Record], metric: str, *, cached: bool, seconds: float
) -> Measurement:
    worst = max(records, key=lambda r: (metrics.STATUSES.index(r["status"]), r["repeat"]))
    ok = [r for r in records if r["status"] == "ok"]
    numbers = rec.numbers(r.get(metric) for r in ok) if metric in metrics.NUMERIC else []
    value = statistics.median(numbers) if numbers else None
    output = tuple(tuple(ids) for ids in ok[0]["output_ids"]) if ok else None
    return Measurement(version=version, status=worst["status"], message=worst.get("message") or "",
                       value=value, output=output, runs=len(records), cached=cached,
                       seconds=seconds)  # fmt: skip


@dataclass(frozen=True)
class Spec:
    """What every probe installs and runs."""

    cell: Cell  # its stack is a template: each probe swaps in its transformers version
    metric: str
    config: runner.RunConfig
    envdir: Path
    keep_envs: bool = False


def probe_stack(template: Stack, version: str) -> Stack:
    stack_id = f"tf{version}-torch{template.torch}-py{template.python}"
    return dataclasses.replace(template, id=stack_id, transformers=version)


def host_fingerprint() -> str:
    return provenance.machine_fingerprint(worker.environment()["machine"])


def _same_machine(record: Record, host: str) -> bool:
    # The worker adds the GPU's name where there is one; the host's view has none.
    machine = {k: v for k, v in (record.get("machine") or {}).items() if k != "gpu"}
    return bool(machine) and provenance.machine_fingerprint(machine) == host


def cached(spec: Spec, stack: Stack, host: str) -> list[Record]:
    """This machine's latest records of the cell on this stack, if there are enough."""
    path = spec.config.run_dir / "raw" / f"{stack.id}.jsonl"
    if not path.exists():
        return []
    found = [r for r in rec.read(path) if r.get("cell_id") == spec.cell.id
             and r.get("status") != "install_error" and _same_machine(r, host)]  # fmt: skip
    return found[-spec.config.repeats :] if len(found) >= spec.config.repeats else []


def measure(spec: Spec, version: str, host: str) -> Measurement:
    """Records of the cell on `version`, from the cache or from a fresh environment."""
    stack = probe_stack(spec.cell.stack, version)
    started = time.monotonic()
    found = cached(spec, stack, host)
    if found:
        return reduce(version, found, spec.metric, cached=True, seconds=0.0)
    cell = Cell(stack, spec.cell.model, spec.cell.scenario)
    raw = spec.config.run_dir / "raw"
    venv = spec.envdir / stack.id
    shutil.rmtree(venv, ignore_errors=True)
    made = subprocess.run(
        [envs.find_uv() or "uv", "venv", "-q", "-p", stack.python, str(venv)],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    python = envs.venv_python(venv)
    installed = envs.InstallResult(False, (), made.stdout + made.stderr)
    if made.returncode == 0:
        installed = envs.install(stack, python, raw / f"{stack.id}.install.log")
    try:
        if installed.ok:
            records = runner.run_stack(stack, [cell], python, spec.config)
        else:
            records = runner.record_install_error(spec.config, stack, [cell], installed.message)
    finally:
        if not spec.keep_envs:
            shutil.rmtree(venv, ignore_errors=True)
    return reduce(version, records, spec.metric, cached=False, seconds=time.monotonic() - started)
