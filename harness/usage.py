"""Bad input is the user's mistake, not ours: one line on stderr and exit code 2.

Every command's parser raises UsageError instead of printing argparse's usage block.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

USAGE_EXIT = 2


class UsageError(Exception):
    """A mistake in what the user typed or wrote; shown as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)
