"""Writes the compare fixtures: small hand-made runs with known changes (run it to refresh).

walk/           three stacks x six cells x four repeats (the fewest that can reach 95%):
  gpt2-355m/st/fp32/lcmu=omit/dm=none  peak 1450 -> 754 MiB at 4.46.3 -> 4.57.6 (-48%)
  gpt2-124m/st/fp32/lcmu=true/dm=none  peak 500 -> 1000 MiB at 4.57.6 -> 5.24.0 (2x)
  tiny-gpt2/st/fp32/lcmu=false/dm=cpu  unsupported on 4.46.3, ok after
  tiny-gpt2/st/fp32/lcmu=omit/dm=none  golden match, then mismatch on 5.24.0
  tiny-gpt2/st/fp32/lcmu=true/dm=none  no golden; 5.24.0 flips a near-tie (drift)
  tiny-gpt2/bin/fp32/lcmu=omit/dm=none load time +15% with overlapping spread (noise)
walk-again/     the same records under another run id: identical runs
other-machine/  5.24.0's records measured on another machine
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
A, B, C = "tf4.46.3-torch2.5.1-py3.11", "tf4.57.6-torch2.8.0-py3.11", "tf5.24.0-torch2.13.0-py3.11"
VERSIONS = {A: ("4.46.3", "2.5.1"), B: ("4.57.6", "2.8.0"), C: ("5.24.0", "2.13.0+cpu")}
MACHINE = {"cpu": "Test CPU", "cores": 2, "mem_total_mb": 24105.6, "arch": "x86_64"}
PROMPT = "The lighthouse stood on"
IDS = [571, 14, 304, 431, 257, 280]
MARGINS = [2.6, 6.8, 0.004, 8.3, 11.2, 10.8]  # a near-tie at step 2
RUNNER_UP = [14, 571, 305, 1, 2, 3]  # the top-2 token at every step


def record(stack: str, cell: str, repeat: int, **fields: Any) -> dict[str, Any]:
    model, fmt, dtype, lcmu, dm = cell.split("/")
    lcmu_value = {"lcmu=omit": None, "lcmu=true": True, "lcmu=false": False}[lcmu]
    tf, torch = VERSIONS[stack]
    ok = fields.get("status", "ok") == "ok"
    out: dict[str, Any] = {
        "schema_version": 1,
        "run_id": "20260101-000000",
        "stack_id": stack,
        "python_version": "3.11.7",
        "torch_version": torch,
        "transformers_version": tf,
        "machine": MACHINE,
        "machine_fingerprint": "aaaaaaaaaaaa",
        "model": model,
        "cell_id": cell,
        "scenario": f"{fmt}/{dtype}/{lcmu}/{dm}",
        "low_cpu_mem_usage": lcmu_value,
        "device_map": None if dm == "dm=none" else dm[3:],
        "dtype": "float32",
        "checkpoint_format": "safetensors" if fmt == "st" else "bin",
        "max_new_tokens": 6,
        "repeat": repeat,
        "mode": "forkserver",
        "status": "ok",
        "message": "",
        "load_s": 0.5,
        "ttft_s": 0.01,
        "tokens_per_s": 1000.0,
        "peak_mb": 10.0,
        "anon_mb": 0.2,
        "prompts": [PROMPT],
        "output_ids": [IDS] if ok else [],
        "margins": [MARGINS] if ok else [],
        "runner_up": [RUNNER_UP] if ok else [],
        "golden": "missing" if ok else None,
    }
    out.update(fields)
    if not ok:
        for key in ("load_s", "ttft_s", "tokens_per_s", "peak_mb", "anon_mb"):
            out[key] = None
    return out


def walk_records() -> list[dict[str, Any]]:
    out = []
    jitter = (0.0, 1.5, -1.0, 0.0)  # MiB: memory repeats differ a little
    for r, j in enumerate(jitter):
        peak355 = {A: 1450 + j, B: 754 + j, C: 755 + j}
        peak124 = {A: 500 + j, B: 500 - j, C: 1000 + j}
        noisy = {A: (0.050, 0.062, 0.080, 0.066), B: (0.050, 0.062, 0.080, 0.066),
                 C: (0.058, 0.072, 0.092, 0.075)}  # fmt: skip
        for s in (A, B, C):
            ms = 1 + r / 100  # times: 1% apart
            out.append(
                record(
                    s,
                    "gpt2-355m/st/fp32/lcmu=omit/dm=none",
                    r,
                    peak_mb=peak355[s],
                    anon_mb=peak355[s] / 2,
                    load_s=0.8 * ms,
                    ttft_s=0.05 * ms,
                    tokens_per_s=80 / ms,
                )
            )
            out.append(
                record(
                    s,
                    "gpt2-124m/st/fp32/lcmu=true/dm=none",
                    r,
                    peak_mb=peak124[s],
                    anon_mb=peak124[s] / 2,
                    load_s=0.3 * ms,
                    ttft_s=0.02 * ms,
                    tokens_per_s=200 / ms,
                )
            )
            if s == A:
                out.append(
                    record(
                        s,
                        "tiny-gpt2/st/fp32/lcmu=false/dm=cpu",
                        r,
                        status="unsupported",
                        golden=None,
                        message="Passing along a `device_map` requires `low_cpu_mem_usage=True`",
                    )
                )
            else:
                out.append(record(s, "tiny-gpt2/st/fp32/lcmu=false/dm=cpu", r))
            mismatch = s == C
            out.append(
                record(
                    s,
                    "tiny-gpt2/st/fp32/lcmu=omit/dm=none",
                    r,
                    golden="mismatch" if mismatch else "match",
                    output_ids=[[571, 14, 304, 99, 257, 280]] if mismatch else [IDS],
                    golden_detail=[
                        {"prompt": PROMPT, "verdict": "mismatch" if mismatch else "match"}
                    ],
                )
            )
            drift = s == C
            out.append(
                record(
                    s,
                    "tiny-gpt2/st/fp32/lcmu=true/dm=none",
                    r,
                    output_ids=[[571, 14, 305, 1, 2, 3]] if drift else [IDS],
                    # The flip took the runner-up, and the candidate was nearly tied too.
                    margins=[[2.6, 6.8, 0.003, 8.3, 11.2, 10.8]] if drift else [MARGINS],
                )
            )
            out.append(
                record(
                    s,
                    "tiny-gpt2/bin/fp32/lcmu=omit/dm=none",
                    r,
                    load_s=noisy[s][r],
                    tokens_per_s=62 / noisy[s][r],
                )
            )
    return out


def write(run: str, records: list[dict[str, Any]]) -> None:
    raw = HERE / run / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for path in raw.glob("*.jsonl"):
        path.unlink()
    for r in records:
        with (raw / f"{r['stack_id']}.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(r, separators=(",", ":")) + "\n")


def main() -> None:
    records = walk_records()
    write("walk", records)
    write("walk-again", [{**r, "run_id": "20260102-000000"} for r in records])
    other = {**MACHINE, "cpu": "Other CPU"}
    write(
        "other-machine",
        [
            {
                **r,
                "run_id": "20260103-000000",
                "machine": other,
                "machine_fingerprint": "bbbbbbbbbbbb",
            }
            for r in records
            if r["stack_id"] == C
        ],
    )


if __name__ == "__main__":
    main()
