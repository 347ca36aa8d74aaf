"""Shards of one run ingested into the results store at the same moment, with and without the
store's lock, side by side in one run: the records kept, and the wall time of all ingests.

Each of N real processes imports the harness, says it is ready, waits for one "go" file and
then ingests its own one-record run folder (the same run id and machine, so every one upserts
the same Parquet file). Without the lock each reads the file, adds its row and swaps it in,
so later swaps drop earlier rows.

Usage:
  python benchmarks/store_ingest_race.py [--shards 6] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from recordkit import make_record, write_run

from harness import paths
from harness.report import store

# argv: run folder, store, go file, "lock" or "none".
CHILD = r"""
import sys, time
from pathlib import Path
from harness.report import store
run, root, go = map(Path, sys.argv[1:4])
(run / "ready").touch()
while not go.exists():
    time.sleep(0.002)
if sys.argv[4] == "lock":
    store.ingest(run, root)
else:
    store._upsert(store.frame(run), root)  # the upsert alone, as it ran before the lock
"""


def one_round(tmp: Path, shards: int, arm: str) -> tuple[int, float]:
    """(records kept, seconds from "go" to the last ingest's end) for one round."""
    runs = [write_run(tmp / f"shard-{i}", [make_record(repeat=i, run_id="race")])
            for i in range(shards)]  # fmt: skip
    root, go = tmp / "store", tmp / "go"
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, str(r), str(root), str(go), arm],
                              cwd=paths.REPO) for r in runs]  # fmt: skip
    while not all((r / "ready").exists() for r in runs):
        time.sleep(0.01)
    started = time.perf_counter()
    go.touch()
    if any(p.wait(timeout=300) for p in procs):
        sys.exit(f"{arm}: an ingest process failed")
    seconds = time.perf_counter() - started
    kept = int(store.query(root, "SELECT count(*) AS n FROM records")["n"].iloc[0])
    return kept, seconds


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--shards", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, list[tuple[int, float]]] = {"none": [], "lock": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):  # the arms alternate, so machine drift hits both alike
            for arm, rounds in results.items():
                rounds.append(one_round(Path(tmp) / f"{arm}-{i}", args.shards, arm))
    print(f"{args.shards} shards ingested at once, {args.rounds} rounds per arm")
    print(f"{'arm':<8} {'records kept per round':<28} {'median s':>9}")
    medians = {}
    for arm, rounds in results.items():
        kept = " ".join(f"{k}/{args.shards}" for k, _ in rounds)
        medians[arm] = statistics.median(s for _, s in rounds)
        print(f"{'no lock' if arm == 'none' else 'lock':<8} {kept:<28} {medians[arm]:>9.3f}")
    print(f"lock / no lock, median wall time: {medians['lock'] / medians['none']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
