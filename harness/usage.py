"""Bad input is the user's mistake, not ours: one line on stderr and exit code 2, through `run`
(the `harness` commands) or `or_exit` (the nox sessions); parsers raise rather than print usage.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, NoReturn, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

USAGE_EXIT = 2
T = TypeVar("T")


class UsageError(Exception):
    """A mistake in what the user typed or wrote; shown as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def say_error(exc: BaseException) -> int:
    """The one line: `harness: error: ...`, whatever the message held (a newline, say)."""
    print(f"harness: error: {' '.join(str(exc).splitlines())}", file=sys.stderr)
    return USAGE_EXIT


def run(call: Callable[[], int], *errors: type[Exception]) -> int:
    """call()'s exit code; UsageError and `errors` (the user's mistakes) give one line and 2."""
    mistakes: tuple[type[Exception], ...] = (UsageError, *errors)
    try:
        return call()
    except mistakes as exc:
        return say_error(exc)
    except SystemExit as exc:
        if exc.code in (None, 0):  # --help printed
            return 0
        raise


def or_exit(call: Callable[[], T], *errors: type[Exception]) -> T:
    """call()'s value; on the user's mistake one line and SystemExit(2) (for nox sessions)."""
    mistakes: tuple[type[Exception], ...] = (UsageError, *errors)
    try:
        return call()
    except mistakes as exc:
        raise SystemExit(say_error(exc)) from None
