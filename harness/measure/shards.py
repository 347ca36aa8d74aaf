"""Scale-out: `--shard I/N` slices of the cells (N machines cover the matrix exactly once), the
merge of the shards' run folders into one, and the GitHub Actions workflow: a job per stack and
shard, then jobs that merge them, comment the compare on a pull request and publish to Pages.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from harness import records as rec

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


@dataclass(frozen=True)
class Merged:
    """What merge_runs added to the run folder."""

    records: int
    files: tuple[Path, ...]


def merge_runs(sources: Sequence[Path], run_dir: Path) -> Merged:
    """Append the records of each shard's run folder to `run_dir`'s, per stack file; other
    files of raw/ (install logs) are copied when run_dir has none of that name. Shards are
    disjoint, so appending keeps every record once; a torn last line is skipped (rec.read)."""
    raw = run_dir / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    count, touched = 0, []
    for source in sources:
        if not (source / "run.json").exists() and not (source / "raw").is_dir():
            raise ValueError(f"{source}: not a run folder (no run.json, no raw/)")
        if not (run_dir / "run.json").exists() and (source / "run.json").exists():
            shutil.copyfile(source / "run.json", run_dir / "run.json")
        for path in sorted((source / "raw").glob("*")):
            target = raw / path.name
            if path.suffix != ".jsonl":
                if path.is_file() and not target.exists():
                    shutil.copyfile(path, target)
                continue
            lines = [json.dumps(r, separators=(",", ":")) + "\n" for r in rec.read(path)]
            with target.open("a", encoding="utf-8") as fh:
                fh.writelines(lines)
            count += len(lines)
            touched.append(target)
    return Merged(count, tuple(dict.fromkeys(touched)))


COMPARE_MARKER = "<!-- harness-compare -->"
# A push to the default branch; scheduled runs carry no repository in their event.
DEFAULT_BRANCH = (
    "github.event_name != 'pull_request' && (github.event_name == 'schedule'"
    " || github.ref_name == github.event.repository.default_branch)"
)
# One comment per pull request, found by its marker and edited in place on each run.
COMMENT_SCRIPT = f"""\
const fs = require('fs');
const marker = '{COMPARE_MARKER}';
const limit = 60000;  // GitHub refuses comments over 65536 characters
let text = fs.existsSync('compare.md') ? fs.readFileSync('compare.md', 'utf8')
  : '_harness compare wrote no markdown: see the job log._';
if (text.length > limit) {{
  text = text.slice(0, limit) + '\\n\\n_(cut: the whole table is in the job summary)_';
}}
const body = marker + '\\n' + text;
const {{owner, repo}} = context.repo;
const issue_number = context.issue.number;
const comments = await github.paginate(github.rest.issues.listComments,
  {{owner, repo, issue_number, per_page: 100}});
const mine = comments.find((c) => c.body && c.body.includes(marker));
if (mine) {{
  await github.rest.issues.updateComment({{owner, repo, comment_id: mine.id, body}});
}} else {{
  await github.rest.issues.createComment({{owner, repo, issue_number, body}});
}}
"""


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
    branch: str = "main",
) -> dict[str, Any]:
    """The workflow as a mapping (dump it with yaml.safe_dump); labels default to matrix.ci."""
    cpu = _runs_on(cpu_runner or matrix.ci.cpu_runner)
    gpu = _runs_on(gpu_runner or matrix.ci.gpu_runner)
    cells = matrix.cells(profile)
    stack_ids = [s.id for s in matrix.stacks if any(c.stack.id == s.id for c in cells)]
    include = [
        {"stack": sid, "shard": f"{i}/{shards}", "runner": gpu if _needs_gpu(cells, sid) else cpu}
        for sid in stack_ids
        for i in range(1, shards + 1)
    ]
    checkout: dict[str, Any] = {"uses": "actions/checkout@v4"}
    python: dict[str, Any] = {"uses": "actions/setup-python@v5", "with": {"python-version": "3.11"}}
    install: dict[str, Any] = {"run": "python -m pip install -e ."}
    measure = (
        "nox -s bench-${{ matrix.stack }} -- "
        f"--profile {profile} --shard ${{{{ matrix.shard }}}} --out reports/run"
    )
    # fmt: off
    bench_steps: list[dict[str, Any]] = [
        checkout,
        {"uses": "astral-sh/setup-uv@v5",
         "with": {"enable-cache": True, "cache-dependency-glob": "matrix.yaml"}},
        python, install, {"name": "Measure", "run": measure},
        {"uses": "actions/upload-artifact@v4", "if": "always()",
         "with": {"name": "records-${{ strategy.job-index }}", "path": "reports/run/",
                  "if-no-files-found": "warn"}},
    ]
    # Shared objects would dump as YAML anchors: each job gets its own copies.
    def merged() -> list[dict[str, Any]]:
        return copy.deepcopy([
            checkout, python, install,
            {"uses": "actions/download-artifact@v4",
             "with": {"pattern": "records-*", "path": "runs"}},
            {"name": "Merge the shards", "run": "harness merge runs/* --out reports/run"},
        ])
    publish_steps: list[dict[str, Any]] = [
        *merged(),
        {"name": "Report", "run": "harness report reports/run"},
        {"uses": "actions/upload-artifact@v4", "with": {"name": "run", "path": "reports/run/"}},
        {"name": "Build the site", "run": "harness publish reports/run --out site"},
        {"uses": "actions/configure-pages@v5"},
        {"uses": "actions/upload-pages-artifact@v3", "with": {"path": "site"}},
        {"id": "deployment", "uses": "actions/deploy-pages@v4"},
    ]
    comment_steps: list[dict[str, Any]] = [
        *merged(),
        {"name": "Compare",
         "run": "harness compare --walk --run reports/run --markdown compare.md"},
        {"name": "Comment on the pull request", "if": "always()",
         "uses": "actions/github-script@v7", "with": {"script": COMMENT_SCRIPT}},
    ]
    return {
        "name": "bench",
        "on": {"push": {"branches": [branch]}, "pull_request": {}, "workflow_dispatch": {},
               "schedule": [{"cron": "0 3 * * 1"}]},
        "permissions": {"contents": "read"},
        "jobs": {
            "bench": {
                "name": "${{ matrix.stack }} (${{ matrix.shard }})",
                "runs-on": "${{ matrix.runner }}", "timeout-minutes": 120,
                "strategy": {"fail-fast": False, "matrix": {"include": include}},
                "steps": bench_steps,
            },
            "publish": {
                # Pages are the default branch's: never a pull request's.
                "needs": "bench", "if": f"always() && {DEFAULT_BRANCH}", "runs-on": cpu,
                "permissions": {"contents": "read", "pages": "write", "id-token": "write"},
                "environment": {"name": "github-pages",
                                "url": "${{ steps.deployment.outputs.page_url }}"},
                "steps": publish_steps,
            },
            "comment": {
                "needs": "bench", "if": "always() && github.event_name == 'pull_request'",
                "runs-on": cpu,
                "permissions": {"contents": "read", "pull-requests": "write"},
                "steps": comment_steps,
            },
        },
    }
    # fmt: on


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the comment's script) as literal blocks, readable in the file."""


def _str(dumper: yaml.SafeDumper, text: str) -> yaml.Node:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _str)


def write_workflow(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Generated by `nox -s ci-workflow` from matrix.yaml; edit matrix.yaml, not this.\n"
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=100)
    path.write_text(header + text, encoding="utf-8")
    return path
