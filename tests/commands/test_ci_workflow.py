"""`harness ci-workflow`'s hosting and pull-request jobs, the composite action (action.yml) and
its example workflow: each passes GitHub's schema, and the comment script, run by node against
an in-memory issues API, keeps one comment per pull request, edited in place."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.commands import compare, main
from harness.measure import shards

REPO = Path(__file__).resolve().parents[2]
ACTION = REPO / "action.yml"
EXAMPLE = REPO / "docs" / "example-workflow.yml"
NODE = shutil.which("node")
# github-script runs the script as the body of an async function of (require, github, context).
FAKE_GITHUB = """\
const fs = require('fs');
const [scriptPath, statePath] = process.argv.slice(2);
const state = JSON.parse(fs.readFileSync(statePath, 'utf8'));
const page = (items) => ({data: items.map((c) => ({...c}))});
const github = {
  paginate: async (method, args) => (await method(args)).data,
  rest: {issues: {
    listComments: async ({issue_number}) => page(state.comments.filter((c) => c.issue === issue_number)),
    updateComment: async ({comment_id, body}) => {
      state.comments.find((c) => c.id === comment_id).body = body; state.calls.push('update');
    },
    createComment: async ({issue_number, body}) => {
      state.comments.push({id: state.comments.length + 100, issue: issue_number, body});
      state.calls.push('create');
    },
  }},
};
const context = {repo: {owner: 'o', repo: 'r'}, issue: {number: 7}};
const AsyncFunction = Object.getPrototypeOf(async () => {}).constructor;
new AsyncFunction('require', 'github', 'context', fs.readFileSync(scriptPath, 'utf8'))(
  require, github, context,
).then(() => fs.writeFileSync(statePath, JSON.stringify(state)));
"""


def _schema_check(schema: str, path: Path) -> subprocess.CompletedProcess[str]:
    # check-jsonschema vendors SchemaStore's schemas of GitHub's workflow and action formats.
    tool = shutil.which("check-jsonschema") or str(
        Path(sys.executable).with_name("check-jsonschema")
    )
    return subprocess.run([tool, "--builtin-schema", schema, str(path)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wf") / "bench.yml"
    argv = ["ci-workflow", "--matrix", str(REPO / "matrix.yaml"), "--shards", "2",
            "--branch", "trunk", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return out


def test_generated_workflow_passes_the_workflow_schema(generated: Path, tmp_path: Path) -> None:
    proc = _schema_check("vendor.github-workflows", generated)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(generated.read_text().replace("pull-requests: write", "pull-requests: rw"))
    assert _schema_check("vendor.github-workflows", broken).returncode != 0


def test_default_branch_pushes_publish_to_pages(generated: Path) -> None:
    data = yaml.safe_load(generated.read_text())
    assert data["on"]["push"] == {"branches": ["trunk"]}
    assert set(data["on"]) == {"push", "pull_request", "workflow_dispatch", "schedule"}
    publish = data["jobs"]["publish"]
    assert publish["permissions"] == {"contents": "read", "pages": "write", "id-token": "write"}
    assert "github.event_name != 'pull_request'" in publish["if"]
    assert "github.event.repository.default_branch" in publish["if"]
    steps = publish["steps"]
    runs = [s.get("run") for s in steps]
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    # Merged first, then the site of the merged run, then the official Pages actions in order.
    merge = runs.index("harness merge runs/* --out reports/run")
    site = runs.index("harness publish reports/run --out site")
    pages = [uses.index(a) for a in ("actions/configure-pages", "actions/upload-pages-artifact",
                                     "actions/deploy-pages")]  # fmt: skip
    assert merge < site < pages[0] < pages[1] < pages[2]
    assert steps[pages[1]]["with"] == {"path": "site"}
    assert publish["environment"]["name"] == "github-pages"


def test_pull_requests_get_the_compare_comment(generated: Path) -> None:
    data = yaml.safe_load(generated.read_text())
    comment = data["jobs"]["comment"]
    assert comment["if"] == "always() && github.event_name == 'pull_request'"
    assert comment["permissions"]["pull-requests"] == "write"
    runs = [s.get("run") for s in comment["steps"]]
    assert "harness compare --walk --run reports/run --markdown compare.md" in runs
    script = comment["steps"][-1]
    assert script["uses"].startswith("actions/github-script@")
    assert shards.COMPARE_MARKER in script["with"]["script"]
    # The options the step uses are compare's own: bad ones would exit 2 in CI.
    step = next(r for r in runs if r and r.startswith("harness compare"))
    ns = compare.parser().parse_args(step.split()[2:])
    assert (ns.walk, ns.run, ns.markdown) == (True, Path("reports/run"), Path("compare.md"))


@pytest.mark.skipif(NODE is None, reason="needs node")
def test_comment_script_updates_in_place_and_never_duplicates(
    generated: Path, tmp_path: Path
) -> None:
    script = yaml.safe_load(generated.read_text())["jobs"]["comment"]["steps"][-1]["with"]
    (tmp_path / "script.js").write_text(script["script"])
    (tmp_path / "fake.js").write_text(FAKE_GITHUB)
    state = tmp_path / "state.json"
    others = [{"id": 1, "issue": 7, "body": "looks good"}, {"id": 2, "issue": 8,
               "body": shards.COMPARE_MARKER + "\nanother pull request"}]  # fmt: skip
    state.write_text(json.dumps({"comments": others, "calls": []}))

    def post(markdown: str | None) -> dict[str, Any]:
        (tmp_path / "compare.md").unlink(missing_ok=True)
        if markdown is not None:
            (tmp_path / "compare.md").write_text(markdown)
        subprocess.run([str(NODE), "fake.js", "script.js", str(state)], cwd=tmp_path,
                       check=True, timeout=60)  # fmt: skip
        data: dict[str, Any] = json.loads(state.read_text())
        return data

    first = post("| metric | verdict |\n|---|---|\n| peak | worse |")
    second = post("| metric | verdict |\n|---|---|\n| peak | same |")
    third = post(None)
    assert first["calls"] == ["create"]
    assert second["calls"] == ["create", "update"]
    assert third["calls"] == ["create", "update", "update"]
    ours = [c for c in third["comments"] if c["issue"] == 7 and c["id"] != 1]
    assert len(ours) == 1  # one comment on the pull request, however many runs
    assert [c["body"] for c in second["comments"] if c["id"] == ours[0]["id"]] == [
        shards.COMPARE_MARKER + "\n| metric | verdict |\n|---|---|\n| peak | same |"
    ]
    assert "wrote no markdown" in str(ours[0]["body"])
    assert third["comments"][:2] == others  # other comments and pull requests untouched


def test_action_and_example_pass_their_schemas(tmp_path: Path) -> None:
    assert _schema_check("vendor.github-actions", ACTION).returncode == 0
    proc = _schema_check("vendor.github-workflows", EXAMPLE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = tmp_path / "action.yml"
    broken.write_text(ACTION.read_text().replace("using: composite", "using: compost"))
    assert _schema_check("vendor.github-actions", broken).returncode != 0


def test_action_installs_this_repository_and_the_example_uses_its_inputs() -> None:
    action = yaml.safe_load(ACTION.read_text())
    assert set(action["inputs"]) == {"matrix", "profile", "python-version", "publish", "out"}
    steps = action["runs"]["steps"]
    text = json.dumps(steps)
    assert 'pip install \\"${{ github.action_path }}\\"' in text
    assert 'noxfile.py\\" -s bench' in text
    assert "harness report" in text
    publish = next(s for s in steps if s.get("name") == "Publish")
    assert publish["if"] == "always() && inputs.publish == 'true'"
    assert "harness publish" in publish["run"]
    assert steps[0]["uses"].startswith("actions/setup-python@")
    example = yaml.safe_load(EXAMPLE.read_text())
    used = next(s for j in example["jobs"].values() for s in j["steps"]
                if s.get("id") == "harness")  # fmt: skip
    assert set(used["with"]) <= set(action["inputs"])
    assert set(example["jobs"]["pages"]["permissions"]) == {"pages", "id-token"}
