"""`harness bench --launcher slurm` through submitit's LocalExecutor: real processes per shard,
run in parallel, merged into one run folder; a failed job is reported and nothing is lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from harness import records as rec
from harness.config.models import LaunchEntry
from harness.measure import launch, shards

REPO = Path(__file__).resolve().parents[2]
LOCAL = LaunchEntry(cluster="local", timeout_min=5, shards=2)


@dataclass(frozen=True)
class FakeShard:
    """A cheap stand-in for one shard's bench: writes records of its cells, as bench would,
    and notes when it ran so the test can see the shards overlap."""

    folder: Path
    index: int
    stack: str
    cells: tuple[str, ...]
    fail: bool = False

    def __call__(self) -> int:
        start = time.time()
        raw = self.folder / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        (self.folder / "run.json").write_text(json.dumps({"run_id": "r1"}))
        for cell in self.cells:
            rec.append(raw / f"{self.stack}.jsonl", {"run_id": "r1", "stack_id": self.stack,
                                                     "cell_id": cell, "status": "ok"})  # fmt: skip
        time.sleep(1.5)  # long enough that two shards run side by side only if in parallel
        (self.folder / "span.json").write_text(json.dumps([start, time.time(), os.getpid()]))
        if self.fail:
            print("loading shard weights", file=sys.stderr)
            raise RuntimeError("CUDA out of memory")
        return 0


def _parts(tmp_path: Path, *, fail: int | None = None) -> list[launch.Shard]:
    cells = [f"c{i}" for i in range(5)]
    parts = []
    for i in (1, 2):
        folder = tmp_path / "run" / "shards" / f"{i}-of-2"
        work = FakeShard(folder, i, "s", tuple(cells[i - 1 :: 2]), fail=i == fail)
        parts.append(launch.Shard(i, 2, folder, work))
    return parts


def test_shards_run_in_parallel_processes_and_merge(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    console = Console(record=True, width=200)
    done = launch.launch(_parts(tmp_path), run_dir, LOCAL, console)
    assert [(f.shard.index, f.exit_code, f.error) for f in done] == [(1, 0, None), (2, 0, None)]
    spans = [json.loads((p.folder / "span.json").read_text()) for p in _parts(tmp_path)]
    assert len({pid for _, _, pid in spans} | {os.getpid()}) == 3  # two processes, not this one
    (s1, e1, _), (s2, e2, _) = spans
    assert max(s1, s2) < min(e1, e2), "the two shards did not overlap in time"
    merged = rec.read_run(run_dir)
    assert sorted(r["cell_id"] for r in merged) == [f"c{i}" for i in range(5)]
    assert (run_dir / "run.json").exists()
    out = console.export_text()
    assert out.count("records merged") == 2
    assert "[2/2] shard" in out


def test_a_failed_shard_is_reported_and_the_records_are_kept(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    console = Console(record=True, width=200)
    done = launch.launch(_parts(tmp_path, fail=2), run_dir, LOCAL, console)
    ok, bad = done
    assert ok.error is None
    assert ok.exit_code == 0
    assert bad.exit_code is None
    assert bad.error is not None
    assert "CUDA out of memory" in bad.error
    assert "loading shard weights" in bad.error
    text = console.export_text()
    assert "FAILED" in text
    assert "CUDA out of memory" in text
    # Nothing lost: the failed shard's records so far and the other shard's are all merged.
    assert sorted(r["cell_id"] for r in rec.read_run(run_dir)) == [f"c{i}" for i in range(5)]
    assert bad.records == 2


def test_merge_appends_per_stack_and_the_command_refuses_twice(tmp_path: Path) -> None:
    for i, cells in ((1, ["a", "c"]), (2, ["b"])):
        for cell in cells:
            rec.append(tmp_path / f"s{i}" / "raw" / "st.jsonl", {"cell_id": cell})
        (tmp_path / f"s{i}" / "raw" / "st.install.log").write_text(f"log {i}")
    out = tmp_path / "merged"
    proc = _harness("merge", str(tmp_path / "s1"), str(tmp_path / "s2"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "merged 3 records of 2 shards" in proc.stdout
    assert [r["cell_id"] for r in rec.read(out / "raw" / "st.jsonl")] == ["a", "c", "b"]
    assert (out / "raw" / "st.install.log").read_text() == "log 1"
    again = _harness("merge", str(tmp_path / "s1"), "--out", str(out))
    assert again.returncode == 2
    assert again.stderr.count("\n") == 1
    assert "already holds records" in again.stderr
    with pytest.raises(ValueError, match="not a run folder"):
        shards.merge_runs([tmp_path / "nothing"], tmp_path / "x")


def _harness(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *argv], capture_output=True,
                          text=True, cwd=REPO, timeout=120, check=False)  # fmt: skip


@pytest.mark.e2e
def test_bench_launcher_slurm_runs_real_shards_through_the_local_executor(
    stack_python: Path, tmp_path: Path, nox_bench: Any
) -> None:
    # `launch: {cluster: local}`: the same submitit jobs as on Slurm, as processes here.
    bench = nox_bench(f'  - {{id: existing, python: "{stack_python}", install: false}}', "{}")
    matrix = bench.matrix
    matrix.write_text(matrix.read_text() + "launch: {cluster: local, shards: 2, timeout_min: 30}\n")
    run_dir = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "bench", "--matrix", str(matrix), "--profile", "smoke",
         "--launcher", "slurm", "--out", str(run_dir)],
        capture_output=True, text=True, cwd=REPO, timeout=1200, check=False,
        env=bench.env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    records = rec.read_run(run_dir)
    assert [r["status"] for r in records] == ["ok"] * 4  # smoke: 4 scenarios, 1 repeat
    assert len({r["run_id"] for r in records}) == 1  # the shards' records are one run
    per_shard = [rec.read_run(run_dir / "shards" / f"{i}-of-2") for i in (1, 2)]
    assert [len(p) for p in per_shard] == [2, 2]
    assert sorted(r["cell_id"] for p in per_shard for r in p) == sorted(
        r["cell_id"] for r in records
    )
    assert "shard 1/2" in proc.stdout
    assert "shard 2/2" in proc.stdout
    assert "records: ok 4" in proc.stdout
    assert json.loads((run_dir / "run.json").read_text())["launcher"] == {
        "cluster": "local",
        "shards": 2,
    }
