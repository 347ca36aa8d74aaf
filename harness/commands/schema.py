"""`harness schema`: the JSON Schema of matrix.yaml, for editors and check-jsonschema."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.commands import command, entry

if TYPE_CHECKING:
    import argparse


def schema(_: argparse.Namespace) -> int:
    from harness.config.schema import schema_text  # noqa: PLC0415 - only this command

    print(schema_text(), end="")  # as committed in matrix.schema.json
    return 0


main = entry(lambda: command("schema"), schema)
