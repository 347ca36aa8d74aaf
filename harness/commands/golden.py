"""`harness golden --from STACK_ID [--models ...] [--run DIR] [--write]` (and `nox -s golden`).

Prints what would change and writes only with --write. Exit codes: 0 done, 1 refused (a
record is not ok, or the ok records of a case disagree), 2 bad input.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from harness import paths, usage
from harness import records as rec
from harness.commands import command, entry
from harness.golden import bless
from harness.golden import store as golden

if TYPE_CHECKING:
    import argparse


def parser() -> argparse.ArgumentParser:
    p = command("golden")
    p.add_argument("--from", dest="stack", required=True, help="the stack id to bless from")
    p.add_argument("--models", default=None, help="model ids, comma-separated")
    p.add_argument("--run", type=Path, default=paths.REPORTS / "latest", help="run folder")
    p.add_argument("--goldens", type=Path, default=golden.GOLDENS)
    p.add_argument("--write", action="store_true", help="write the goldens (default: dry run)")
    return p


def bless_run(ns: argparse.Namespace) -> int:
    if not (ns.run / "raw").is_dir():
        raise usage.UsageError(f"{ns.run}: no such run folder")
    models = [m for m in ns.models.split(",") if m] if ns.models else None
    try:
        changes = bless.plan(rec.read_run(ns.run), ns.stack, models, ns.goldens)
    except bless.BlessError as exc:
        print(f"harness: {exc}", file=sys.stderr)
        return bless.REFUSED_EXIT
    for change in changes:
        inside = change.path.is_relative_to(ns.goldens)
        rel = change.path.relative_to(ns.goldens) if inside else change.path
        print(f"{change.kind:>9}  {rel}  {change.note}".rstrip())
    pending = [c for c in changes if c.kind != "unchanged"]
    if not ns.write:
        print(f"{len(pending)} golden(s) would change; nothing written (add --write)")
        return 0
    for change in pending:
        golden.write_golden(ns.goldens, change.golden)
    print(f"wrote {len(pending)} golden(s) under {ns.goldens}")
    return 0


main = entry(parser, bless_run)
