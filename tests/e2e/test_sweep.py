"""End-to-end: a release sweep through `nox -s bench`, resumed without repeating a stack.

The sweep asks the package index (as pip is configured) which transformers releases exist,
installs each picked one beside torch 2.13.0 and runs tiny-gpt2. A release that cannot
install is compatibility data: install_error records, never an aborted sweep.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from harness import records as rec
from harness.commands import report

pytestmark = pytest.mark.e2e

SWEEPS = """\
  []
sweeps:
  - {transformers: ">=5.23,<5.25", torch: ["2.13.0"], python: "3.11"}
  - {transformers: "==4.57.6", torch: ["2.13.0"], python: "3.11", pins: ["harness-no-such-package==1"]}
"""
SETTINGS = "{repeats: 1, timeout_s: 300, max_new_tokens: 8}"
GOOD = ("tf5.23.0-torch2.13.0-py3.11", "tf5.24.0-torch2.13.0-py3.11")
BAD = "tf4.57.6-torch2.13.0-py3.11"


def run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800, check=False)


def test_a_sweep_runs_each_release_and_resumes_without_repeating_one(nox_bench: Any) -> None:
    bench = nox_bench(SWEEPS, SETTINGS)
    first = run([*bench.cmd, "--", "--profile", "smoke", "--out", str(bench.run_dir)], bench.env)
    out = first.stdout + first.stderr
    records = rec.read_run(bench.run_dir)
    by_stack: dict[str, set[str]] = {}
    for r in records:
        by_stack.setdefault(str(r["stack_id"]), set()).add(str(r["status"]))
    assert sorted(by_stack) == sorted((*GOOD, BAD)), out[-3000:]
    assert all(by_stack[s] == {"ok"} for s in GOOD), (by_stack, out[-3000:])
    # The release that cannot install is recorded with the resolver's own words.
    assert by_stack[BAD] == {"install_error"}
    bad = next(r for r in records if r["stack_id"] == BAD)
    assert "harness-no-such-package" in str(bad["message"])
    assert {r["transformers_version"] for r in records if r["stack_id"] in GOOD} == {"5.23.0", "5.24.0"}  # fmt: skip
    assert first.returncode == 1  # a failed cell fails the run; the other stacks still ran
    # The listing the sweep resolved against is cached with its date and named in run.json.
    listing = json.loads(
        (Path(bench.env["HARNESS_CACHE"]) / "releases" / "transformers.json").read_text()
    )
    assert "5.24.0" in listing["versions"]
    manifest = json.loads((bench.run_dir / "run.json").read_text())
    assert manifest["releases_listed_at"] == listing["queried_at"]
    # The compatibility page has one block per release, in the state its records give.
    assert report.main([str(bench.run_dir)]) == 0
    page = (bench.run_dir / "compat.html").read_text(encoding="utf-8")
    shown = dict(
        re.findall(r'data-stack="([^"]+)" data-model="tiny-gpt2" data-status="([^"]+)"', page)
    )
    assert shown == {GOOD[0]: "ok", GOOD[1]: "ok", BAD: "install_error"}

    # Stopped after the first release: the resumed sweep skips it before installing anything.
    (bench.run_dir / "raw" / f"{GOOD[1]}.jsonl").unlink()
    resumed = run([*bench.cmd, "--", "--resume", str(bench.run_dir)], bench.env)
    log = resumed.stdout + resumed.stderr
    assert f"{GOOD[0]} finished in" in log, log[-3000:]
    again = rec.read_run(bench.run_dir)
    assert sorted(str(r["stack_id"]) for r in again) == sorted(str(r["stack_id"]) for r in records)  # fmt: skip
    kept = [r for r in again if r["stack_id"] == GOOD[0]]
    assert [r["started_at"] for r in kept] == [
        r["started_at"] for r in records if r["stack_id"] == GOOD[0]
    ]
