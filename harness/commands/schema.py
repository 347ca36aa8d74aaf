"""`harness schema`: the JSON Schema of matrix.yaml, for editors and check-jsonschema."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from harness import usage
from harness.commands import COMMANDS

if TYPE_CHECKING:
    from collections.abc import Sequence


def parser(prog: str = "harness schema") -> usage.Parser:
    return usage.Parser(prog=prog, description=COMMANDS["schema"])


def schema() -> int:
    from harness.config.schema import matrix_json_schema  # noqa: PLC0415 - only this command

    print(json.dumps(matrix_json_schema(), indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    return usage.run(lambda: (parser().parse_args(args), schema())[1])
