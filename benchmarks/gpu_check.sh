#!/usr/bin/env bash
# GPU check: the smoke models on CUDA with an existing-environment stack (this machine's own
# python3 with torch and transformers; no nox or uv needed), then the GPU rows.
#   bash benchmarks/gpu_check.sh            # OUT=dir keeps the run folder there
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-$(command -v python3)}"        # the stack: has torch + transformers
HOST="${HOST_PYTHON:-$PY}"                    # runs the harness: PyYAML, rich, packaging
OUT="${OUT:-$(mktemp -d)}"
mkdir -p "$OUT"
MATRIX="$OUT/gpu-matrix.yaml"
cat > "$MATRIX" <<YAML
settings: {repeats: 1, timeout_s: 240, max_new_tokens: 20}
stacks:
  - {id: gpu-existing, python: "$PY", install: false}
models:
  tiny-gpt2: {source: embedded, prompts: ["The lighthouse stood on"]}
  gpt2-124m: {source: preset, prompts: ["The quick brown fox"]}
scenarios:
  low_cpu_mem_usage: [omit]
  device_map: [none, cuda, auto]
  dtype: [float32, bfloat16, float16]
  checkpoint_format: [safetensors]
profiles:
  smoke: {models: [tiny-gpt2, gpt2-124m]}
  default: {models: [tiny-gpt2, gpt2-124m]}
  full: {models: [tiny-gpt2, gpt2-124m]}
YAML
export HARNESS_CACHE="${HARNESS_CACHE:-$OUT/cache}"
set +e
"$HOST" -m harness bench --matrix "$MATRIX" --profile smoke --out "$OUT/run" --timeout 240
code=$?
set -e
"$HOST" - "$OUT/run" <<'PY'
import json, pathlib, sys
rows = []
for path in sorted(pathlib.Path(sys.argv[1], "raw").glob("*.jsonl")):
    rows += [json.loads(line) for line in path.open() if line.endswith("\n")]
print(f"{'cell':<40} {'status':<11} {'load s':>7} {'cuda MiB':>9} {'cpu peak':>9} {'file MiB':>9} {'tok/s':>7}  device map / gpu")
for r in rows:
    if r["device_map"] not in ("cuda", "auto"):
        continue
    f = lambda v, d=1: "-" if v is None else f"{v:.{d}f}"
    gpu = (r.get("machine") or {}).get("gpu", "")
    print(f"{r['cell_id']:<40} {r['status']:<11} {f(r['load_s'], 3):>7} {f(r['cuda_peak_mb']):>9} "
          f"{f(r['peak_mb']):>9} {f(r['file_mb']):>9} {f(r['tokens_per_s']):>7}  {r.get('hf_device_map')} {gpu}")
    if r["status"] != "ok":
        print("   ", r["message"][:200])
PY
exit $code
