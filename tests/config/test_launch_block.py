"""matrix.yaml's `launch:` block (harness bench --launcher slurm): values, defaults, and one
`file:line: key: problem` line per bad value, as every other key."""

from __future__ import annotations

from typing import TYPE_CHECKING

import jsonschema  # type: ignore[import-untyped]
import pytest
import yaml

from harness.config.matrix import MatrixError, load
from harness.config.schema import matrix_json_schema

if TYPE_CHECKING:
    from pathlib import Path

STACKS = 'stacks:\n  - {python: "3.11", transformers: "4.46.3", torch: "2.5.1"}\n'
MODELS = "models:\n  tiny-gpt2: {source: embedded, prompts: [hi]}\n"
PROFILES = "profiles:\n  smoke: {}\n  default: {}\n  full: {}\n"
VALID = STACKS + MODELS + PROFILES  # 8 lines: `launch:` starts on line 9


def _write(tmp_path: Path, launch: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(VALID + launch + "\n", encoding="utf-8")
    return path


def test_defaults_and_given_values(tmp_path: Path) -> None:
    default = load(_write(tmp_path, "")).launch
    assert (default.cluster, default.shards, default.timeout_min) == ("slurm", 1, 120)
    assert default.partition is None
    text = "launch: {partition: gpu-a100, gpus_per_node: 1, cpus_per_task: 8, timeout_min: 90, shards: 4}"
    given = load(_write(tmp_path, text)).launch
    assert (given.partition, given.gpus_per_node, given.cpus_per_task) == ("gpu-a100", 1, 8)
    assert (given.timeout_min, given.shards, given.cluster) == (90, 4, "slurm")
    assert load(_write(tmp_path, "launch: {cluster: local}")).launch.cluster == "local"


ERRORS = [
    ("launch: {shards: 0}", 9, "launch.shards: must be positive"),
    ("launch: {shards: two}", 9, "launch.shards: expected a positive integer"),
    ("launch: {timeout_min: 1.5}", 9, "launch.timeout_min: expected a positive integer"),
    ("launch: {gpus_per_node: -1}", 9, "launch.gpus_per_node: must be positive"),
    ("launch: {cpus_per_task: [4]}", 9, "launch.cpus_per_task: expected a positive integer"),
    ("launch: {cluster: kubernetes}", 9, "launch.cluster: expected one of slurm, local"),
    ("launch: {partition: 7}", 9, "launch.partition: expected a string"),
    (
        "launch: {partiton: gpu}",
        9,
        "launch.partiton: unknown key 'partiton' (did you mean 'partition'?",
    ),
    ("launch: [slurm]", 9, "launch: expected a mapping"),
    ("launch:\n  shards: 2\n  timeout_min: 0", 11, "launch.timeout_min: must be positive"),
]


@pytest.mark.parametrize(("text", "line", "fragment"), ERRORS)
def test_bad_launch_values_are_one_line(
    tmp_path: Path, text: str, line: int, fragment: str
) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(MatrixError) as info:
        load(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message, message


def test_the_json_schema_knows_launch() -> None:
    validator = jsonschema.Draft202012Validator(matrix_json_schema())
    doc = yaml.safe_load(VALID)
    validator.validate({**doc, "launch": {"cluster": "local", "shards": 2, "timeout_min": 5}})
    for bad in ({"shards": "two"}, {"cluster": "k8s"}, {"partiton": "x"}):
        with pytest.raises(jsonschema.ValidationError):
            validator.validate({**doc, "launch": bad})
