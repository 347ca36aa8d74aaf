"""The harness CLI: argv -> call -> exit code, one module per command (`harness --help`)."""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from harness import paths, usage
from harness.config import matrix as matrix_mod
from harness.decide import releases

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

T = TypeVar("T")
N = TypeVar("N", int, float)

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
    "merge": "merge the run folders of shards (or CI artifacts) into one run",
    "history": "one cell's series across runs or releases from the results store; --add runs",
    "publish": "a static site: compatibility matrix, badge, claims, history, runs index",
}


def command(name: str, *parents: argparse.ArgumentParser) -> usage.Parser:
    return usage.Parser(prog=f"harness {name}", description=COMMANDS[name], parents=list(parents))


def add_matrix(
    p: argparse.ArgumentParser,
    help: str | None = None,  # noqa: A002
    name: str = "--matrix",
    nargs: str | None = None,
) -> None:
    """--matrix (or the argument `name`), defaulting to $HARNESS_MATRIX or matrix.yaml."""
    default = Path(os.environ.get("HARNESS_MATRIX", paths.DEFAULT_MATRIX))
    p.add_argument(name, type=Path, default=default, help=help, nargs=nargs)


def load_matrix(path: Path, *, refresh: bool = False) -> matrix_mod.Matrix:
    """matrix.yaml with the stacks its sweeps generate, from the index's cached listing."""
    loaded = matrix_mod.load(path)
    try:
        return loaded.swept(releases.index_listing(refresh=refresh))
    except releases.ReleasesError as exc:
        raise usage.UsageError(f"{path}: sweeps: {exc}") from None


def entry(
    parser: Callable[[], argparse.ArgumentParser],
    call: Callable[[argparse.Namespace], int],
    *errors: type[Exception],
) -> Callable[[Sequence[str] | None], int]:
    """A command's main(argv): parse, call; the user's mistakes are one line and exit code 2."""

    def main(argv: Sequence[str] | None = None) -> int:
        args = list(sys.argv[1:] if argv is None else argv)
        return usage.run(lambda: call(parser().parse_args(args)), *errors)

    return main


def checked(parse: Callable[[str], T]) -> Callable[[str], T]:
    """An argparse type that shows parse's ValueError (argparse's own message drops it)."""

    def check(text: str) -> T:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return check


def _positive(convert: Callable[[str], N], what: str) -> Callable[[str], N]:
    def parse(text: str) -> N:
        try:
            value = convert(text)
        except ValueError:
            value = convert("0")
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"expected a {what}, got {text!r}")
        return value

    return parse


positive_int = _positive(int, "positive integer")
positive_float = _positive(float, "positive number of seconds")


def main(argv: Sequence[str] | None = None) -> int:
    """The `harness` console script: the first word picks the command, which parses the rest."""
    args = list(sys.argv[1:] if argv is None else argv)
    top = usage.Parser(
        prog="harness",
        description="Validation and benchmark harness for transformers x torch upgrades.",
        epilog="nox installs the stacks: `nox -s bench`; `nox -l` lists the sessions.",
    )
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, text in COMMANDS.items():
        sub.add_parser(name, help=text, add_help=False)

    def dispatch() -> int:
        name = top.parse_args(args[:1]).command
        module = importlib.import_module(f"harness.commands.{name.replace('-', '_')}")
        return int(module.main(args[1:]))

    return usage.run(dispatch)
