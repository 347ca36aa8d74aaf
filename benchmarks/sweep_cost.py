"""What one more release costs a sweep, beyond its own runs.

Runs `nox -s bench` over a sweep matrix twice: once to warm uv's cache (downloads, wheels),
then the measured pass with fresh environments. Reports the measured pass's wall time, the sum
of its runs' own times (each record's wall_s: spawn, load, generate), and the difference per
release (environment creation, install, nox, the report).

    python benchmarks/sweep_cost.py [--matrix benchmarks/sweep.yaml] [--profile smoke] [--no-warm]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sweep(matrix: Path, profile: str, out: Path) -> float:
    if out.exists():
        shutil.rmtree(out)
    env = {**os.environ, "HARNESS_MATRIX": str(matrix)}
    nox = Path(sys.executable).with_name("nox")
    start = time.perf_counter()
    # Fresh environments (no reuse): each release is created and installed as a new one is.
    cmd = [str(nox), "-s", "bench", "--", "--profile", profile, "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, check=False, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if not (out / "raw").is_dir():
        sys.exit(f"the sweep wrote no records:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return wall


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--matrix", type=Path, default=REPO / "benchmarks" / "sweep.yaml")
    p.add_argument("--profile", default="smoke")
    p.add_argument("--no-warm", action="store_true", help="the cache is warm already")
    args = p.parse_args()
    if not args.no_warm:
        print("warming uv's cache (not measured) ...", flush=True)
        sweep(args.matrix, args.profile, REPO / "reports" / "sweep-warm")
    out = REPO / "reports" / "sweep-measured"
    wall = sweep(args.matrix, args.profile, out)
    records = [
        json.loads(line)
        for f in sorted((out / "raw").glob("*.jsonl"))
        for line in f.read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    releases = {r["stack_id"] for r in records}
    runs = sum(r.get("wall_s") or 0.0 for r in records)
    statuses: dict[str, int] = {}
    for r in records:
        statuses[r["status"]] = statuses.get(r["status"], 0) + 1
    # In fork-server mode each stack imports torch and transformers once, measured (import_s,
    # compiled from source as every worker runs with PYTHONDONTWRITEBYTECODE) and recorded.
    imports = sum({r["stack_id"]: r.get("import_s") or 0.0 for r in records}.values())
    n = max(len(releases), 1)
    own = runs + imports
    print(f"releases {len(releases)}, runs {len(records)} {statuses}")
    print(f"sweep wall {wall:.1f} s; runs' own {runs:.1f} s; stack imports {imports:.1f} s")
    print(f"ratio of sweep wall to runs + imports: {wall / max(own, 1e-9):.2f}")
    print(
        f"per release beyond its runs: {(wall - runs) / n:.1f} s, "
        f"beyond its runs and its import: {(wall - own) / n:.1f} s"
    )


if __name__ == "__main__":
    main()
