"""Writes tests/data/run-default: a subset of one clean default-profile run (run it to refresh).

    python tests/data/make_run_default.py reports/<run-id>

Every stack, every model, five scenarios that decide the claims and the compatibility grid,
the first two repeats. The records are copied as the run wrote them.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).parent / "run-default"
SCENARIOS = {
    "st/fp32/lcmu=omit/dm=none", "bin/fp32/lcmu=omit/dm=none", "st/fp32/lcmu=false/dm=none",
    "st/fp32/lcmu=false/dm=cpu", "st/fp32/lcmu=true/dm=none",
}  # fmt: skip
REPEATS = 2


def main() -> None:
    run = Path(sys.argv[1])
    shutil.rmtree(HERE / "raw", ignore_errors=True)
    (HERE / "raw").mkdir(parents=True)
    for path in sorted((run / "raw").glob("*.jsonl")):
        kept = [
            line
            for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
            if json.loads(line)["scenario"] in SCENARIOS and json.loads(line)["repeat"] < REPEATS
        ]
        (HERE / "raw" / path.name).write_text("".join(kept), encoding="utf-8")
    # The manifest, without the measuring machine's own paths.
    manifest = json.loads((run / "run.json").read_text(encoding="utf-8"))
    manifest.update(command=["nox", "-s", "bench"], matrix="matrix.yaml")
    manifest.pop("wheel_sources", None)
    (HERE / "run.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
