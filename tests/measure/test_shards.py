"""Shards of the real matrix, and the generated GitHub Actions workflow."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness import usage
from harness.commands.bench import parse_bench_args, select
from harness.config import matrix
from harness.measure import shards

REPO = Path(__file__).resolve().parents[2]
MATRIX = matrix.load(REPO / "matrix.yaml")


@pytest.mark.parametrize("profile", ["smoke", "default", "full"])
@pytest.mark.parametrize("count", [1, 2, 3])
def test_shards_cover_the_real_matrix_exactly_once(profile: str, count: int) -> None:
    cells = MATRIX.cells(profile)
    every = [(c.stack.id, c.id) for c in cells]
    parts = [
        [(c.stack.id, c.id) for c in shards.shard(cells, i, count)] for i in range(1, count + 1)
    ]
    union = [key for part in parts for key in part]
    assert sorted(union) == sorted(every)  # covered
    assert len(set(union)) == len(union)  # no overlap
    assert max(map(len, parts)) - min(map(len, parts)) <= 1  # balanced
    # Deterministic: the same split from a shuffled input.
    again = shards.shard(list(reversed(cells)), 1, count)
    assert [(c.stack.id, c.id) for c in again] == parts[0]


def test_bench_shard_option_selects_the_slice() -> None:
    args = parse_bench_args(["--profile", "default", "--shard", "2/3"], MATRIX)
    picked = select(MATRIX, args)
    assert picked == shards.shard(MATRIX.cells("default"), 2, 3)
    per_stack = [c for s in MATRIX.stacks for c in select(MATRIX, args, s.id)]
    assert sorted(c.id + c.stack.id for c in per_stack) == sorted(c.id + c.stack.id for c in picked)


@pytest.mark.parametrize("text", ["0/3", "4/3", "1/0", "a/b", "3", "1/3/2"])
def test_bad_shards(text: str) -> None:
    with pytest.raises(ValueError, match="shard"):
        shards.parse_shard(text)
    with pytest.raises(usage.UsageError):
        parse_bench_args(["--shard", text], MATRIX)


def test_workflow_matrix_is_the_stacks_of_matrix_yaml(tmp_path: Path) -> None:
    data = shards.workflow(MATRIX, shards=2)
    include = data["jobs"]["bench"]["strategy"]["matrix"]["include"]
    assert sorted({j["stack"] for j in include}) == sorted(s.id for s in MATRIX.stacks)
    assert sorted((j["stack"], j["shard"]) for j in include) == sorted(
        (s.id, f"{i}/2") for s in MATRIX.stacks for i in (1, 2)
    )
    assert data["jobs"]["publish"]["needs"] == "bench"
    path = shards.write_workflow(tmp_path / "bench.yml", data)
    assert (
        yaml.safe_load(path.read_text())["jobs"]["bench"]["strategy"]["matrix"]["include"]
        == include
    )


def test_workflow_passes_the_github_workflow_schema(tmp_path: Path) -> None:
    # check-jsonschema vendors SchemaStore's schema of the GitHub Actions workflow format.
    tool = shutil.which("check-jsonschema") or str(
        Path(sys.executable).with_name("check-jsonschema")
    )
    path = shards.write_workflow(tmp_path / "bench.yml", shards.workflow(MATRIX, shards=3))
    proc = subprocess.run([tool, "--builtin-schema", "vendor.github-workflows", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(path.read_text().replace("runs-on:", "runs_on:", 1))
    proc = subprocess.run([tool, "--builtin-schema", "vendor.github-workflows", str(broken)],
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert proc.returncode != 0  # the check really checks


def test_runner_labels_come_from_matrix_yaml(tmp_path: Path) -> None:
    assert MATRIX.ci.cpu_runner == ("ubuntu-latest",)
    assert MATRIX.ci.gpu_runner == ("self-hosted", "gpu")
    text = (
        (REPO / "matrix.yaml")
        .read_text()
        .replace("cpu_runner: ubuntu-latest", "cpu_runner: [self-hosted, linux, big]")
    )
    text = text.replace("device_map: [none, cpu]", "device_map: [none, cuda]", 1)
    path = tmp_path / "matrix.yaml"
    path.write_text(text)
    custom = matrix.load(path)
    data = shards.workflow(custom)
    runners = {
        j["stack"]: j["runner"] for j in data["jobs"]["bench"]["strategy"]["matrix"]["include"]
    }
    # Every stack runs cuda cells in this matrix, so every job asks for the GPU labels.
    assert set(map(tuple, runners.values())) == {("self-hosted", "gpu")}
    assert data["jobs"]["publish"]["runs-on"] == ["self-hosted", "linux", "big"]
    path.write_text(text.replace("gpu_runner: [self-hosted, gpu]", "gpu_runner: 7"))
    with pytest.raises(matrix.MatrixError, match=r"ci\.gpu_runner"):
        matrix.load(path)
