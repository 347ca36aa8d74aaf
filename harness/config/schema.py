"""The JSON Schema of matrix.yaml, from the pydantic model (committed as matrix.schema.json).

Editors that speak the YAML language server pick it up from matrix.yaml's first line,
``# yaml-language-server: $schema=./matrix.schema.json``. The schema describes the shape
and types; the cross-reference rules (harness/config/checks.py) are not in it.
"""

from __future__ import annotations

import json
from typing import Any

from harness.config.models import MatrixDocument

__all__ = ["SCHEMA_FILE", "matrix_json_schema", "schema_text"]

SCHEMA_FILE = "matrix.schema.json"


def matrix_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of matrix.yaml's data."""
    schema = MatrixDocument.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema}


def schema_text() -> str:
    """The schema as committed: indented JSON with a final newline."""
    return json.dumps(matrix_json_schema(), indent=2, ensure_ascii=False) + "\n"
