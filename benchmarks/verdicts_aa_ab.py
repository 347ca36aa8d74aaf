"""Can the verdicts be trusted? A/A, A/B and the timing spread, measured in one run.

* A/A: one environment (transformers 5.24.0, torch 2.13.0) under two stack ids, tiny-gpt2 and
  gpt2-124m, safetensors, low_cpu_mem_usage omitted and true, 5 repeats, interleaved. The
  default compare settings must call nothing better or worse (goal: 0 of all (cell, metric)
  rows; at most 5%), and exit 0.
* A/B: transformers 4.46.3 against 5.24.0 (both on torch 2.13.0) on gpt2-124m with
  low_cpu_mem_usage omitted, 5 repeats, interleaved: the peak memory must be `better`.
* Timing spread: max/min over the 5 repeats of one cell, CPU time per phase beside wall time,
  from the A/A records.

    python benchmarks/verdicts_aa_ab.py [--repeats 5] [--out DIR]

The environments are made once under $HARNESS_CACHE/bench-envs with the harness's installer
(uv, with pip's find-links when uv's own variables are unset).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from typing import TYPE_CHECKING

from harness.config.matrix import Cell, CompareSettings, Model, Scenario, Stack, load
from harness.decide import stats
from harness.decide.verdicts import Comparison, compare_records
from harness.measure import envs, runner

if TYPE_CHECKING:
    from harness.records import Record

REPO = Path(__file__).resolve().parent.parent
PROMPT = ("The lighthouse stood on",)


def environment(transformers: str, accelerate: str) -> tuple[Stack, Path]:
    stack = Stack(id=f"tf{transformers}-torch2.13.0-py3.11", python="3.11",
                  transformers=transformers, torch="2.13.0", accelerate=accelerate)  # fmt: skip
    venv = runner.default_cache_dir() / "bench-envs" / stack.id
    python = envs.venv_python(venv)
    if not python.exists():
        subprocess.run([envs.find_uv() or "uv", "venv", "-q", "-p", "3.11", str(venv)], check=True)
        result = envs.install(stack, python, venv / "install.log")
        if not result.ok:
            sys.exit(f"cannot install {stack.id}: {result.message}")
    return stack, python


def model(model_id: str) -> Model:
    source = "embedded" if model_id == "tiny-gpt2" else "preset"
    return Model(model_id, source, model_id, PROMPT)


def run(
    plans: list[tuple[Stack, list[Cell], Path]], repeats: int, out: Path, threads: int | None
) -> list[Record]:
    cfg = runner.RunConfig(run_id=out.name, run_dir=out, mode="forkserver", timeout_s=600,
                           repeats=repeats, cache_dir=runner.default_cache_dir(),
                           threads=threads, interop_threads=threads)  # fmt: skip
    records = runner.run_stacks(plans, cfg)
    bad = [r for r in records if r["status"] != "ok"]
    if bad:
        sys.exit(
            f"{bad[0]['stack_id']} {bad[0]['cell_id']}: {bad[0]['status']} {bad[0]['message']}"
        )
    return records


def compared(records: list[Record], base: str, cand: str, settings: CompareSettings) -> Comparison:
    def side(stack: str) -> list[Record]:
        return [r for r in records if r["stack_id"] == stack]

    notes: list[str] = []
    rows = compare_records(side(base), side(cand), settings, notes=notes)
    return Comparison(base, cand, settings, tuple(rows), tuple(notes))


def spread(values: list[float]) -> float:
    return max(values) / min(values) if min(values) > 0 else float("inf")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="verdicts-")))
    parser.add_argument("--threads", type=int, help="torch threads per run (default: all cores)")
    parser.add_argument("--skip-ab", action="store_true", help="the A/A run and spreads only")
    args = parser.parse_args()
    settings = load(REPO / "matrix.yaml").compare
    new, new_python = environment("5.24.0", "1.15.0")

    # A/A: the same environment under two ids, interleaved.
    twin = Stack(id="aa-twin", python=new.python, transformers=new.transformers, torch=new.torch)
    scenarios = [Scenario(lcmu, None, "float32", "safetensors", 20) for lcmu in (None, True)]
    plans = []
    for stack in (new, twin):
        cells = [Cell(stack, model(m), s) for m in ("tiny-gpt2", "gpt2-124m") for s in scenarios]
        plans.append((stack, cells, new_python))
    aa = run(plans, args.repeats, args.out / "aa", args.threads)
    aa_cmp = compared(aa, new.id, twin.id, settings)
    judged = [r for r in aa_cmp.rows if r.verdict != "n/a"]
    false = [r for r in judged if r.verdict in stats.CHANGES]
    print(f"A/A: {len(judged)} (cell, metric) rows judged, {len(false)} better/worse "
          f"({len(false) / max(len(judged), 1):.1%}); verdicts {dict(Counter(r.verdict for r in aa_cmp.rows))}; "  # noqa: E501
          f"exit code {1 if aa_cmp.failures() else 0}")  # fmt: skip
    for r in false:
        print(f"  false: {r.cell} {r.metric} {r.verdict}: {r.reason}")

    # Timing spread of one cell: CPU time per phase beside wall time.
    cell = "gpt2-124m/st/fp32/lcmu=omit/dm=none"
    mine = [r for r in aa if r["stack_id"] == new.id and r["cell_id"] == cell]
    print(f"Timing spread over {len(mine)} repeats of {cell} (max/min):")
    for phase in ("load", "first_token", "generate"):
        wall = [float(r["phases"][phase]["seconds"]) for r in mine]
        cpu = [float(r["phases"][phase]["cpu_s"]) for r in mine]
        print(f"  {phase:<12} wall {spread(wall):.3f}x   cpu {spread(cpu):.3f}x")

    if args.skip_ab:
        return 0
    # A/B: 4.46.3 against 5.24.0, low_cpu_mem_usage omitted.
    old, old_python = environment("4.46.3", "1.1.1")
    omit = Scenario(None, None, "float32", "safetensors", 20)
    ab_plans = [(s, [Cell(s, model("gpt2-124m"), omit)], p)
                for s, p in ((old, old_python), (new, new_python))]  # fmt: skip
    ab = run(ab_plans, args.repeats, args.out / "ab", args.threads)
    ab_cmp = compared(ab, old.id, new.id, settings)
    for r in ab_cmp.rows:
        if r.metric in ("peak_mb", "load_peak_mb", "status", "golden"):
            print(f"A/B {r.metric}: {r.verdict}; {r.base} -> {r.candidate}; {r.reason}")
    (args.out / "summary.json").write_text(json.dumps({
        "aa_rows": len(judged), "aa_false": len(false), "aa_exit": 1 if aa_cmp.failures() else 0,
        "ab_peak": next(r.verdict for r in ab_cmp.rows if r.metric == "peak_mb"),
    }, indent=1))  # fmt: skip
    print(f"records: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
