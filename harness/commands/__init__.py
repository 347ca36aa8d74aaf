"""The harness CLI: argv -> call -> exit code, one module per command (`harness --help`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

# name -> one line of help; each command is the module harness.commands.<name, - as _>.
COMMANDS: dict[str, str] = {
    "bench": "run the existing-environment stacks (install: false) without nox",
    "report": "tables, charts, dashboard and claims of one or several runs",
    "compare": "upgrade verdicts between two stacks or two runs, or --walk a run",
    "bisect": "the first transformers release where one measurement flips",
    "golden": "record or refresh goldens from one stack of a run",
    "ci-workflow": "write the GitHub Actions workflow from matrix.yaml",
    "validate": "check matrix.yaml",
    "cells": "list the cells a profile runs",
    "summary": "print a run's summary; exit 1 on failures",
    "schema": "print the JSON Schema of matrix.yaml",
}


def main(argv: Sequence[str] | None = None) -> int:
    """The `harness` console script."""
    from harness.commands import cli  # noqa: PLC0415 - `import harness.commands.x` stays light

    return cli.main(argv)
