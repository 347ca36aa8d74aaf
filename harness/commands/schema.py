"""`harness schema`: the JSON Schema of matrix.yaml, for editors and check-jsonschema."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from harness.commands import command, entry

if TYPE_CHECKING:
    import argparse


def schema(_: argparse.Namespace) -> int:
    from harness.config.schema import matrix_json_schema  # noqa: PLC0415 - only this command

    print(json.dumps(matrix_json_schema(), indent=2))
    return 0


main = entry(lambda: command("schema"), schema)
