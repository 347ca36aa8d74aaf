"""`harness COMMAND ...` (and `python -m harness`): picks the command, which does the rest.

Bad input is the user's mistake, not ours: one line on stderr and exit code 2 (harness.usage).
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING

from harness import usage
from harness.commands import COMMANDS

# Older spellings: the bench helpers lived here before commands/bench.py.
from harness.commands.bench import parse_bench_args, select

if TYPE_CHECKING:
    from collections.abc import Sequence

USAGE_EXIT = usage.USAGE_EXIT
UsageError = usage.UsageError
__all__ = ["USAGE_EXIT", "UsageError", "main", "parse_bench_args", "parser", "select"]


def parser() -> usage.Parser:
    """The top level only: each command parses its own options (`harness COMMAND --help`)."""
    p = usage.Parser(
        prog="harness",
        description="Validation and benchmark harness for transformers x torch upgrades.",
        epilog="nox installs the stacks: `nox -s bench`; `nox -l` lists the sessions.",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)

    def dispatch() -> int:
        # Only the first word goes to the top level: the rest is the command's.
        name = parser().parse_args(args[:1]).command
        module = importlib.import_module(f"harness.commands.{name.replace('-', '_')}")
        code: int = module.main(args[1:])
        return code

    return usage.run(dispatch)
