"""`harness bench --launcher slurm`: a submitit job per shard, a line per finished shard, and the
merge of every shard's records (a failed one's too) by the workflow's own merge, shards.merge_runs.
`launch: {cluster: local}` runs the same jobs as processes on this machine (the tests use it)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import submitit
from submitit.core.utils import FailedJobError, UncompletedJobError

from harness.measure import shards

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from rich.console import Console

    from harness.config.models import LaunchEntry

STDERR_TAIL = 1500  # characters of a failed job's stderr shown
# Slurm's accounting is asked at most this often; local processes are cheap to poll.
POLL_S = {"slurm": 30.0, "local": 0.5}


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count`: `work` (pickled into the job) writes its run into `folder`."""

    index: int
    count: int
    folder: Path
    work: Callable[[], int]

    @property
    def name(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass(frozen=True)
class Finished:
    """A shard's job, done: its exit code (None when the job itself failed) and merge."""

    shard: Shard
    job_id: str
    exit_code: int | None
    error: str | None
    records: int
    wall_s: float


def executor(settings: LaunchEntry, folder: Path, name: str) -> submitit.AutoExecutor:
    """submitit's executor for `settings.cluster`, with the matrix's partition and sizes."""
    ex = submitit.AutoExecutor(folder=folder, cluster=settings.cluster)
    given = {
        "slurm_partition": settings.partition,
        "gpus_per_node": settings.gpus_per_node,
        "cpus_per_task": settings.cpus_per_task,
    }
    ex.update_parameters(
        name=name, timeout_min=settings.timeout_min,
        **{k: v for k, v in given.items() if v is not None},
    )  # fmt: skip
    return ex


def launch(
    parts: Sequence[Shard], run_dir: Path, settings: LaunchEntry, console: Console
) -> list[Finished]:
    """Submit a job per shard, wait for all, merge each into `run_dir` as it finishes."""
    ex = executor(settings, run_dir / "shards" / "submitit", name=f"harness-{run_dir.name}")
    started = time.monotonic()
    jobs = [ex.submit(part.work) for part in parts]
    by_id = {job.job_id: part for job, part in zip(jobs, parts, strict=True)}
    console.print(
        f"submitted {len(jobs)} {settings.cluster} jobs "
        f"({', '.join(j.job_id for j in jobs)}); logs in {ex.folder}"
    )
    done: list[Finished] = []
    try:
        for job in submitit.helpers.as_completed(jobs, poll_frequency=POLL_S[settings.cluster]):
            part = by_id[job.job_id]
            code, error = _outcome(job)
            merged = shards.merge_runs([part.folder], run_dir) if part.folder.is_dir() else None
            finished = Finished(
                part, job.job_id, code, error, merged.records if merged else 0,
                time.monotonic() - started,
            )  # fmt: skip
            done.append(finished)
            console.print(_line(finished, len(done), len(jobs)), markup=False)
    except KeyboardInterrupt:
        for job in jobs:
            if not job.done():
                job.cancel(check=False)
        raise
    return sorted(done, key=lambda f: f.shard.index)


def _outcome(job: submitit.Job[int]) -> tuple[int | None, str | None]:
    try:
        return job.result(), None
    except (FailedJobError, UncompletedJobError) as exc:
        text = (job.stderr() or str(exc)).strip()
        return None, text if len(text) <= STDERR_TAIL else "…" + text[-STDERR_TAIL:]


def _line(f: Finished, n: int, total: int) -> str:
    head = f"[{n}/{total}] shard {f.shard.name} (job {f.job_id}, {f.wall_s:.0f} s): "
    if f.error is not None:
        return f"{head}FAILED, {f.records} records kept; stderr:\n{f.error}"
    state = "ok" if f.exit_code == 0 else f"exit {f.exit_code}"
    return f"{head}{state}, {f.records} records merged"
