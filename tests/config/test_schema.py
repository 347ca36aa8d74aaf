"""matrix.schema.json: the committed schema is the exported one, and matrix.yaml fits it."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema  # type: ignore[import-untyped]
import yaml

from harness.config.schema import SCHEMA_FILE, matrix_json_schema, schema_text

REPO = Path(__file__).resolve().parents[2]


def test_committed_schema_is_current() -> None:
    committed = (REPO / SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == schema_text(), "run: python -c 'from harness.config.schema import ...'"
    assert json.loads(committed) == matrix_json_schema()


def test_repo_matrix_fits_the_schema() -> None:
    schema = matrix_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    data = yaml.safe_load((REPO / "matrix.yaml").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(data)


def test_schema_rejects_an_unquoted_version_and_unknown_keys() -> None:
    validator = jsonschema.Draft202012Validator(matrix_json_schema())
    data = yaml.safe_load((REPO / "matrix.yaml").read_text(encoding="utf-8"))
    data["stacks"][0]["torch"] = 2.5
    assert not validator.is_valid(data)
    data = yaml.safe_load((REPO / "matrix.yaml").read_text(encoding="utf-8"))
    data["settings"]["repeat"] = 3
    assert not validator.is_valid(data)


def test_matrix_yaml_points_editors_at_the_schema() -> None:
    first = (REPO / "matrix.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# yaml-language-server: $schema=./{SCHEMA_FILE}"


def test_schema_bounds_numbers_as_the_loader_does() -> None:
    """Bounds are JSON Schema's own keywords, so editors flag `repeats: 0` as the loader does
    (pydantic exported them as "ge"/"gt", which validators ignore)."""
    validator = jsonschema.Draft202012Validator(matrix_json_schema())
    for section, key, bad in (
        ("settings", "repeats", 0),
        ("settings", "timeout_s", 0),
        ("compare", "alpha", 1.5),
        ("compare", "memory", 0),
        ("compare", "memory_floor_mb", -1),
    ):
        data = yaml.safe_load((REPO / "matrix.yaml").read_text(encoding="utf-8"))
        data[section][key] = bad
        assert not validator.is_valid(data), (section, key, bad)
    for sweep_bad in ({"every": 0}, "newest"):
        data = yaml.safe_load((REPO / "matrix.yaml").read_text(encoding="utf-8"))
        data["sweeps"] = [{"transformers": ">=4.48", "torch": ["2.13.0"], "python": "3.11", "pick": sweep_bad}]  # fmt: skip
        assert not validator.is_valid(data), sweep_bad
    assert '"ge"' not in json.dumps(matrix_json_schema())
