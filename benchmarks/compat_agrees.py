"""Does a run's compat.html say what its records say? An independent reading of both.

For each (model, stack) the expected state is worked out here from the raw records alone (the
worst status, where ok < unsupported < golden mismatch < install_error < error < timeout <
killed; an ok record with a failing golden is a golden mismatch), and compared with the
page's data attributes and counts.

    python benchmarks/compat_agrees.py RUN_DIR      # after `harness report RUN_DIR`
"""

from __future__ import annotations

import json
import re
import sys
from collections import defaultdict
from pathlib import Path

ORDER = ["ok", "unsupported", "golden mismatch", "install_error", "error", "timeout", "killed"]
FAILING = {"mismatch", "stale", "tokenizer"}
BLOCK = re.compile(
    r'data-stack="([^"]+)" data-model="([^"]+)" data-status="([^"]+)" data-count="([^"]+)"'
)


def state(record: dict[str, object]) -> str:
    if record["status"] != "ok":
        return str(record["status"])
    return "golden mismatch" if record.get("golden") in FAILING else "ok"


def main() -> None:
    run = Path(sys.argv[1])
    expected: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for path in sorted((run / "raw").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            cell = expected[(str(r["model"]), str(r["stack_id"]))]
            old = cell.get(str(r["scenario"]), "ok")
            cell[str(r["scenario"])] = max(old, state(r), key=ORDER.index)
    page = (run / "compat.html").read_text(encoding="utf-8")
    shown = {(m, s): (st, n) for s, m, st, n in BLOCK.findall(page)}
    wrong = []
    for key, scenarios in sorted(expected.items()):
        worst = max(scenarios.values(), key=ORDER.index)
        ok = sum(v == "ok" for v in scenarios.values())
        want = (worst, f"{ok}/{len(scenarios)}")
        if shown.get(key) != want:
            wrong.append(f"{key}: page {shown.get(key)}, records {want}")
    extra = set(shown) - set(expected)
    print(f"{len(expected)} (model, stack) blocks from the records, {len(shown)} on the page")
    for line in wrong + [f"{k}: on the page only" for k in sorted(extra)]:
        print("DISAGREES", line)
    sys.exit(1 if wrong or extra else 0)


if __name__ == "__main__":
    main()
