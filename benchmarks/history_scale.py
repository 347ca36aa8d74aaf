"""history.html from a 500,000-record results store in at most 10 s and 5 MB (issue #13).

The store is generated with numpy and pyarrow, vectorised: 250 daily runs, each of 8 stacks
drawn from 27 (9 transformers releases x 3 torch versions), 5 models, 10 scenarios and 5
repeats, in the store's own layout and schema (the columns of a committed real run). Peak
memory scales with the model's weights and steps down at one release; times carry noise;
2 % of records fail with an error message. Then it times `build_history` and, for the
terminal, one cell's `series`.

Usage:
  python benchmarks/history_scale.py [--records 500000] [--store DIR] [--out DIR] [--rounds 3]
Prints the figures; exit code 1 when the median build is over 10 s or the page over 5 MB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.config import ids
from harness.report import history, store

TARGET_S, TARGET_BYTES = 10.0, 5 * 1024 * 1024
REAL_RUN = Path(__file__).resolve().parent.parent / "tests" / "data" / "run-default"
TF = ("4.44.2", "4.46.3", "4.48.3", "4.50.3", "4.51.3", "4.53.3", "4.57.6", "5.5.4", "5.24.0")
TORCH = ("2.5.1", "2.8.0", "2.13.0")
MODELS = {"tiny-gpt2": 1.2e6, "gpt2-124m": 124e6, "gpt2-355m": 355e6, "gpt2-774m": 774e6,
          "gpt2-1.5b": 1.56e9}  # fmt: skip
SCENARIOS = [
    ids.scenario_id(lcmu, dm, dtype, fmt)
    for lcmu, dm in ((None, None), (True, None), (False, None), (False, "cpu"), (True, "auto"))
    for dtype, fmt in (("float32", "safetensors"), ("bfloat16", "bin"))
]
RUNS, STACKS_PER_RUN, REPEATS = 250, 8, 5
MACHINE = "ac632de8edd1"


def generate(root: Path, records: int, seed: int = 0) -> int:
    """Writes `records` rows (a multiple of one run's size) into the store at `root`."""
    rng = np.random.default_rng(seed)
    per_run = STACKS_PER_RUN * len(MODELS) * len(SCENARIOS) * REPEATS
    runs = max(1, records // per_run)
    stacks = [(tf, torch) for tf in TF for torch in TORCH]
    schema = store.to_table(store.frame(REAL_RUN)).schema
    start = dt.datetime(2026, 1, 1, 3, tzinfo=dt.timezone.utc)
    names, params = list(MODELS), np.array(list(MODELS.values()))
    # One run's rows: stack slot x model x scenario x repeat, as index arrays.
    slot, model, scen, rep = (a.ravel() for a in np.indices(
        (STACKS_PER_RUN, len(MODELS), len(SCENARIOS), REPEATS)))  # fmt: skip
    n = len(slot)
    weights_mb = params[model] * 4 / 2**20
    for run in range(runs):
        when = start + dt.timedelta(days=run)
        run_id = when.strftime(store.RUN_ID_FORMAT)
        picked = rng.choice(len(stacks), STACKS_PER_RUN, replace=False)
        tf_i = picked[slot] // len(TORCH)
        named = [ids.stack_id(stacks[s][0], stacks[s][1], "3.11") for s in picked]
        stack_ids = np.array(named)[slot]
        # Before 4.51 the default path peaks at twice the weights, after it at once.
        ratio = np.where(tf_i < TF.index("4.51.3"), 2.0, 1.05) * rng.normal(1, 0.01, n)
        ok = rng.random(n) > 0.02
        status = np.where(ok, "ok", "error")
        load_s = params[model] / 4e8 * (1 + 0.1 * tf_i / len(TF)) * rng.lognormal(0, 0.05, n)
        cols = {
            "run_id": np.full(n, run_id), "stack_id": stack_ids,
            "python_version": np.full(n, "3.11.7"),
            "transformers_version": np.array(TF)[tf_i],
            "torch_version": np.array([stacks[s][1] for s in picked])[slot],
            "machine_fingerprint": np.full(n, MACHINE),
            "machine": np.full(n, "AMD EPYC 7B13, 2 cores, 7.8 GiB"),
            "model": np.array(names)[model], "scenario": np.array(SCENARIOS)[scen],
            "cell_id": np.array([ids.cell_id(m, s) for m in names for s in SCENARIOS])[
                model * len(SCENARIOS) + scen],
            "repeat": rep, "mode": np.full(n, "forkserver"), "status": status,
            "message": np.where(ok, "", "RuntimeError: out of memory while loading"),
            "params": params[model].astype(np.int64),
            "peak_mb": np.where(ok, weights_mb * ratio, np.nan),
            "load_peak_mb": np.where(ok, weights_mb * ratio * 0.98, np.nan),
            "anon_mb": np.where(ok, weights_mb * rng.normal(1, 0.01, n), np.nan),
            "file_mb": np.where(ok, 40 + rng.normal(0, 2, n), np.nan),
            "peak_ratio": np.where(ok, ratio, np.nan),
            "load_s": np.where(ok, load_s, np.nan),
            "ttft_s": np.where(ok, load_s / 20, np.nan),
            "tokens_per_s": np.where(ok, 2e9 / params[model] * rng.lognormal(0, 0.05, n), np.nan),
            "warm_tokens_per_s": np.where(ok, 2.2e9 / params[model], np.nan),
            "load_cpu_s": np.where(ok, load_s * 1.6, np.nan),
            "ttft_cpu_s": np.where(ok, load_s / 12, np.nan),
            "generate_cpu_s": np.where(ok, params[model] / 1e8 * rng.lognormal(0, 0.05, n), np.nan),
            "anon_peak_mb": np.where(ok, weights_mb * ratio * 0.95, np.nan),
            "load_anon_mb": np.where(ok, weights_mb * rng.normal(1, 0.01, n), np.nan),
            "load_file_mb": np.where(ok, 30 + rng.normal(0, 2, n), np.nan),
            "import_s": np.where(ok, rng.lognormal(1, 0.05, n), np.nan),
            "started_at": np.full(n, when.timestamp()) + np.arange(n),
            "run_time": np.full(n, np.datetime64(when.replace(tzinfo=None), "us")),
        }  # fmt: skip
        arrays = [
            pa.array(cols[f.name], f.type) if f.name in cols else pa.nulls(n, f.type)
            for f in schema
        ]
        store.save(
            pa.Table.from_arrays(arrays, schema=schema), store.file_for(root, run_id, MACHINE)
        )
    return runs * per_run


def size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--records", type=int, default=500_000)
    p.add_argument("--store", type=Path, help="default: a temporary folder")
    p.add_argument("--out", type=Path, help="where history.html goes (default: temporary)")
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.store or Path(tmp) / "store"
        out = args.out or Path(tmp) / "site"
        t0 = time.perf_counter()
        made = generate(root, args.records) if not store.files(root) else None
        gen_s = time.perf_counter() - t0
        count = int(store.query(root, "SELECT count(*) AS n FROM records")["n"].iloc[0])
        builds, cpus = [], []
        for _ in range(args.rounds):
            t, c = time.perf_counter(), time.process_time()
            page = history.build_history(root, out)
            builds.append(time.perf_counter() - t)
            cpus.append(time.process_time() - c)
        t = time.perf_counter()
        cell = store.series(root, "gpt2-124m", SCENARIOS[0], "peak_mb", by="release")
        series_s = time.perf_counter() - t
        html = page.stat().st_size
        print(f"store: {count:,} records, {len(store.files(root)):,} files, "
              f"{size(root) / 2**20:.1f} MiB on disk" + (f" (generated in {gen_s:.1f} s)" if made else ""))  # fmt: skip  # noqa: E501
        print(
            f"history.html: {html / 2**20:.2f} MiB ({html:,} bytes); "
            f"build wall s per round: {', '.join(f'{b:.2f}' for b in builds)} "
            f"(median {statistics.median(builds):.2f}; CPU {statistics.median(cpus):.2f} s; "
            f"{os.cpu_count()} cores)"
        )
        print(f"harness history (one cell, by release): {series_s:.2f} s, {len(cell)} rows")
        fits = statistics.median(builds) <= TARGET_S and html <= TARGET_BYTES
        print(f"target: <= {TARGET_S:.0f} s and <= 5 MiB: {'met' if fits else 'MISSED'}")
        return 0 if fits else 1


if __name__ == "__main__":
    sys.exit(main())
