"""`harness COMMAND ...` under its older module name, with the bench helpers' older spellings."""

from harness import usage
from harness.commands import main
from harness.commands.bench import parse_bench_args, select

USAGE_EXIT = usage.USAGE_EXIT
UsageError = usage.UsageError
__all__ = ["USAGE_EXIT", "UsageError", "main", "parse_bench_args", "select"]
