"""Fork-server against fresh interpreters, side by side in one run.

Proves two targets of issue #2:
  * one more scenario costs at most 1.5x its own load+generate time (fork-server mode);
  * the two modes agree on memory within 2%: peak_mb, load_peak_mb and anon_mb, each as a
    share of its own value and of the run's peak (a few MiB on a 50 MiB figure is a large
    share of it and a small one of the weights).

Usage (PYTHON is a stack environment's interpreter, e.g. one made by `nox -s bench`):
  python benchmarks/forkserver_vs_fresh.py --python .nox/bench-.../bin/python \
      --model gpt2-355m --repeats 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.config.matrix import Cell, Model, Scenario, Stack
from harness.measure import runner

MEMORY_FIELDS = ("load_peak_mb", "peak_mb", "anon_mb", "file_mb")
JUDGED = ("peak_mb", "load_peak_mb", "anon_mb")


def _cells(model_id: str, stack: Stack) -> list[Cell]:
    source = "embedded" if model_id == "tiny-gpt2" else "preset"
    model = Model(id=model_id, source=source, location=model_id,
                  prompts=("The keeper of the light",), revision=None,
                  trust_remote_code=False)  # fmt: skip
    return [
        Cell(stack, model, Scenario(lcmu, None, "float32", fmt, 20))
        for fmt in ("safetensors", "bin")
        for lcmu in (None, True)
    ]


def _own_seconds(record: dict[str, Any]) -> float:
    phases = record["phases"]
    # The warm phase (the first prompt generated again) is part of each run's own work.
    return float(sum(phases[p]["seconds"] for p in ("load", "first_token", "generate", "warm")))


def _run(mode: str, python: Path, cells: list[Cell], repeats: int, out: Path) -> dict[str, Any]:
    cfg = runner.RunConfig(run_id=mode, run_dir=out / mode, mode=mode, timeout_s=600,
                           repeats=repeats, cache_dir=runner.default_cache_dir())  # fmt: skip
    started = time.perf_counter()
    records = runner.run_stack(cells[0].stack, cells, python, cfg)
    total = time.perf_counter() - started
    bad = [r for r in records if r["status"] != "ok"]
    if bad:
        sys.exit(f"{mode}: {bad[0]['cell_id']} {bad[0]['status']}: {bad[0]['message']}")
    return {"records": records, "total_s": total}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", type=Path, required=True)
    parser.add_argument("--model", default="gpt2-355m")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    stack = Stack(id="bench", python="", transformers="", torch="", accelerate=None, pins=(),
                  find_links=(), index_url=None, torch_backend=None)  # fmt: skip
    cells = _cells(args.model, stack)
    with tempfile.TemporaryDirectory() as tmp:
        # Warm the preset cache and the page cache outside the timed runs.
        _run("forkserver", args.python, cells[:1], 1, Path(tmp) / "warm")
        runs = {
            m: _run(m, args.python, cells, args.repeats, Path(tmp)) for m in ("forkserver", "fresh")
        }
    print(
        f"model {args.model}, {len(cells)} scenarios x {args.repeats} repeats, python {args.python}"
    )
    print(f"{'mode':<11} {'total s':>8} {'wall/run s':>11} {'own s':>7} {'wall/own':>9}")
    for mode, run in runs.items():
        recs = run["records"]
        wall = statistics.mean(r["wall_s"] for r in recs)
        own = statistics.mean(_own_seconds(r) for r in recs)
        print(f"{mode:<11} {run['total_s']:>8.1f} {wall:>11.2f} {own:>7.2f} {wall / own:>9.2f}")
    print("\nmemory, median over repeats (MiB): forkserver vs fresh")
    worst: dict[str, tuple[float, float, float]] = dict.fromkeys(JUDGED, (0.0, 0.0, 0.0))
    for cell in cells:
        parts = []
        medians = {
            field: {
                m: statistics.median(
                    r[field] for r in runs[m]["records"] if r["cell_id"] == cell.id
                )
                for m in runs
            }
            for field in MEMORY_FIELDS
        }
        peak = medians["peak_mb"]["fresh"]
        for field, vals in medians.items():
            gap = abs(vals["forkserver"] - vals["fresh"])
            if field in worst:
                own, of_peak = gap / max(abs(vals["fresh"]), 1.0), gap / max(peak, 1.0)
                worst[field] = max(worst[field], (own, of_peak, gap))
            parts.append(f"{field} {vals['forkserver']:.1f}/{vals['fresh']:.1f}")
        print(f"  {cell.scenario.id:<28} " + "  ".join(parts))
    print("\nlargest difference between modes, as a share of the figure / of the peak / MiB:")
    for field, (own, of_peak, gap) in worst.items():
        print(f"  {field:<13} {own * 100:6.2f}%  {of_peak * 100:6.2f}%  {gap:6.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
