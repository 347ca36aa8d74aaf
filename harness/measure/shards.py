"""Scale-out: deterministic shards of the cell list, and a GitHub Actions workflow.

`nox -s bench -- --shard I/N` runs the I-th of N disjoint slices, so N machines together
cover the matrix exactly once. `nox -s ci-workflow` writes a workflow from matrix.yaml:
one job per stack (and shard), uv's cache, records uploaded as artifacts, and a final job
that merges them and publishes the dashboard to GitHub Pages.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

    from harness.config.matrix import Cell, Matrix

_SHARD = re.compile(r"([0-9]+)/([0-9]+)")


def parse_shard(text: str) -> tuple[int, int]:
    """'2/3' -> (2, 3): the second of three shards, counted from 1."""
    match = _SHARD.fullmatch(text.strip())
    if not match:
        raise ValueError(f"expected a shard like 1/3, got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise ValueError(f"shard {text!r}: need 1 <= I <= N")
    return index, count


def shard(cells: Sequence[Cell], index: int, count: int) -> list[Cell]:
    """The cells of shard `index` of `count`: round-robin over a stable order, so the
    shards are disjoint, cover every cell once, and differ in size by at most one."""
    ordered = sorted(cells, key=lambda c: (c.stack.id, c.id))
    return [c for i, c in enumerate(ordered) if i % count == index - 1]


def _runs_on(labels: Sequence[str]) -> str | list[str]:
    return labels[0] if len(labels) == 1 else list(labels)


def _needs_gpu(cells: Sequence[Cell], stack_id: str) -> bool:
    return any(c.stack.id == stack_id and c.scenario.device_map in ("cuda", "auto") for c in cells)


def workflow(
    matrix: Matrix,
    *,
    profile: str = "default",
    shards: int = 1,
    cpu_runner: Sequence[str] | None = None,
    gpu_runner: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The workflow as a mapping (dump it with yaml.safe_dump); labels default to matrix.ci."""
    cpu = _runs_on(cpu_runner or matrix.ci.cpu_runner)
    gpu = _runs_on(gpu_runner or matrix.ci.gpu_runner)
    cells = matrix.cells(profile)
    stack_ids = [s.id for s in matrix.stacks if any(c.stack.id == s.id for c in cells)]
    include = [
        {
            "stack": sid,
            "shard": f"{i}/{shards}",
            "runner": gpu if _needs_gpu(cells, sid) else cpu,
        }
        for sid in stack_ids
        for i in range(1, shards + 1)
    ]
    bench_steps: list[dict[str, Any]] = [
        {"uses": "actions/checkout@v4"},
        {
            "uses": "astral-sh/setup-uv@v5",
            "with": {"enable-cache": True, "cache-dependency-glob": "matrix.yaml"},
        },
        {"uses": "actions/setup-python@v5", "with": {"python-version": "3.11"}},
        {"run": "python -m pip install -e ."},
        {
            "name": "Measure",
            "run": (
                "nox -s bench-${{ matrix.stack }} -- "
                f"--profile {profile} --shard ${{{{ matrix.shard }}}} --out reports/run"
            ),
        },
        {
            "uses": "actions/upload-artifact@v4",
            "if": "always()",
            "with": {
                "name": "records-${{ strategy.job-index }}",
                "path": "reports/run/",
                "if-no-files-found": "warn",
            },
        },
    ]
    publish_steps: list[dict[str, Any]] = [
        {"uses": "actions/checkout@v4"},
        {"uses": "actions/setup-python@v5", "with": {"python-version": "3.11"}},
        {"run": "python -m pip install -e ."},
        {"uses": "actions/download-artifact@v4", "with": {"pattern": "records-*", "path": "runs"}},
        {"name": "Merge and report", "run": "nox -s report -- runs/* --out site"},
        {"uses": "actions/upload-pages-artifact@v3", "with": {"path": "site"}},
        {"id": "deployment", "uses": "actions/deploy-pages@v4"},
    ]
    return {
        "name": "bench",
        "on": {"workflow_dispatch": {}, "schedule": [{"cron": "0 3 * * 1"}]},
        "permissions": {"contents": "read"},
        "jobs": {
            "bench": {
                "name": "${{ matrix.stack }} (${{ matrix.shard }})",
                "runs-on": "${{ matrix.runner }}",
                "timeout-minutes": 120,
                "strategy": {"fail-fast": False, "matrix": {"include": include}},
                "steps": bench_steps,
            },
            "publish": {
                "needs": "bench",
                "if": "always()",
                "runs-on": cpu,
                "permissions": {"pages": "write", "id-token": "write"},
                "environment": {
                    "name": "github-pages",
                    "url": "${{ steps.deployment.outputs.page_url }}",
                },
                "steps": publish_steps,
            },
        },
    }


def write_workflow(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Generated by `nox -s ci-workflow` from matrix.yaml; edit matrix.yaml, not this.\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False, width=100), encoding="utf-8")
    return path
