"""Capped runs at the fit's edge: how each ends, cap by cap (what `--fit` bisects over).

Just above a run's need, a cgroup cap may not OOM-kill: the kernel keeps evicting file pages
the run reads straight back until the timeout. Such a run is `timeout` with reason
`memory_budget` (it thrashed: the fit counts it too small); before, the fit saw an error.
For each cap this prints how many runs were killed by the cap, thrashed, timed out without
reaching it, or finished.

Usage (PYTHON is a stack environment's interpreter, e.g. one made by `nox -s bench`):
  python benchmarks/fit_edge.py --python .nox/bench-.../bin/python 270 274 274.5 275 278
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import paths
from harness.config.matrix import Cell, Model, Scenario, Stack
from harness.measure import runner
from harness.metrics import MIB


def outcome(record: dict[str, object]) -> str:
    if record["reason"] == "memory_budget":
        return "killed by cap" if record["status"] == "killed" else "thrashed at cap"
    return str(record["status"])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--python", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("caps_mib", type=float, nargs="+")
    args = parser.parse_args()
    manifest = paths.FIXTURES / "tiny_gpt2" / "manifest.json"
    prompts = tuple(json.loads(manifest.read_text(encoding="utf-8"))["prompts"])
    stack = Stack(id="edge", python=str(args.python), transformers="", torch="", install=False)
    model = Model(id="tiny-gpt2", source="embedded", location="tiny-gpt2", prompts=prompts,
                  revision=None, trust_remote_code=False)  # fmt: skip
    cells = [Cell(stack, model, Scenario(None, None, "float32", "safetensors", 8))]
    print(f"tiny-gpt2 fp32 safetensors, {args.repeats} fresh runs per cap, {args.timeout:g} s each")
    with tempfile.TemporaryDirectory() as tmp:
        for cap in args.caps_mib:
            cfg = runner.RunConfig(
                run_id=f"cap{cap}", run_dir=Path(tmp) / f"cap{cap}", mode="fresh",
                timeout_s=args.timeout, repeats=args.repeats, cache_dir=Path(tmp) / "cache",
                memory_budget=int(cap * MIB),
            )  # fmt: skip
            records = runner.run_stack(stack, cells, args.python, cfg)
            counts = collections.Counter(outcome(dict(r)) for r in records)
            shown = ", ".join(f"{k} {n}/{len(records)}" for k, n in sorted(counts.items()))
            print(f"{cap:>7g} MiB: {shown}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
