"""`harness bench --launcher slurm`: the cells split as `--shard I/N` splits them, one submitit
job per shard running this same `harness bench` into `RUN_DIR/shards/I-of-N`, then the merge
into RUN_DIR and its summary. N, the partition, GPUs, CPUs and time limit: matrix.yaml `launch:`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console

from harness import usage
from harness.commands import bench, load_matrix
from harness.measure import launch
from harness.report.console import finish_run

if TYPE_CHECKING:
    from pathlib import Path


@dataclass(frozen=True)
class ShardBench:
    """One shard's `harness bench`, as its job runs it (pickled: plain options only)."""

    options: argparse.Namespace

    def __call__(self) -> int:
        return bench.bench_existing(self.options)


def bench_launched(ns: argparse.Namespace) -> int:
    """Submit, wait, merge; exit 1 when a shard's job failed or a merged cell did."""
    m = load_matrix(ns.matrix, refresh=getattr(ns, "refresh", False))
    args = bench.bench_args(ns, m)
    if args.shard is not None or args.resume is not None:
        raise usage.UsageError("--launcher slurm makes its own shards: drop --shard and --resume")
    cells = bench.select(m, args)
    if not any(not c.stack.install for c in cells):
        raise usage.UsageError("no existing-environment stack (install: false) selected")
    cfg = bench.run_config(args, m, bench.new_run_id())
    run_dir = cfg.run_dir.resolve()  # the jobs may start elsewhere
    bench.ensure_writable(run_dir)
    count = min(m.launch.shards, len(cells))  # no empty shard
    bench.write_manifest(
        run_dir, ns.matrix, args, cfg.run_id, mode=cfg.mode, repeats=cfg.repeats,
        launcher={"cluster": m.launch.cluster, "shards": count},
    )  # fmt: skip
    bench.point_latest(run_dir)
    parts = [
        launch.Shard(i, count, folder, ShardBench(_shard_options(ns, cfg.run_id, i, count, folder)))
        for i in range(1, count + 1)
        for folder in [run_dir / "shards" / f"{i}-of-{count}"]
    ]
    console = Console(width=200)
    done = launch.launch(parts, run_dir, m.launch, console)
    code = finish_run(run_dir, console, strict_golden=args.strict_golden)
    failed = [f.shard.name for f in done if f.error is not None]
    if failed:
        print(f"shard jobs failed: {', '.join(failed)} (their stderr is above)", file=sys.stderr)
        return 1
    return code


def _shard_options(
    ns: argparse.Namespace, run_id: str, index: int, count: int, folder: Path
) -> argparse.Namespace:
    # The run's own id, so the merged records are one run; the listing is the launcher's.
    return argparse.Namespace(**{
        **vars(ns), "launcher": "local", "shard": (index, count), "out": folder,
        "run_id": run_id, "refresh": False, "matrix": ns.matrix.resolve(),
    })  # fmt: skip
