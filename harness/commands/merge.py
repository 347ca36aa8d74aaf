"""`harness merge SHARD_DIR ... --out RUN_DIR`: the shards' run folders as one run, as the
generated workflow's merge step and `harness bench --launcher slurm` both make it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness import usage
from harness.commands import command, entry
from harness.measure import shards

if TYPE_CHECKING:
    import argparse


def parser() -> argparse.ArgumentParser:
    p = command("merge")
    p.add_argument("shard_dirs", nargs="+", type=Path, metavar="SHARD_DIR", help="run folders")
    p.add_argument("--out", type=Path, required=True, help="the merged run folder")
    return p


def merge(ns: argparse.Namespace) -> int:
    missing = [d for d in ns.shard_dirs if not d.is_dir()]
    if missing:
        raise usage.UsageError(f"{missing[0]}: no such run folder")
    if any((ns.out / "raw").glob("*.jsonl")):
        # Merging into records already there would count them twice on a second merge.
        raise usage.UsageError(f"{ns.out}: already holds records; merge into a new folder")
    try:
        done = shards.merge_runs(ns.shard_dirs, ns.out)
    except ValueError as exc:
        raise usage.UsageError(str(exc)) from None
    print(f"merged {done.records} records of {len(ns.shard_dirs)} shards into {ns.out}")
    return 0


main = entry(parser, merge)
