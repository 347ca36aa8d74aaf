"""Where things live: the checkout's folders and the harness's own files. One place, no copies."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parent
DEFAULT_MATRIX = REPO / "matrix.yaml"
REPORTS = REPO / "reports"
STORE = REPORTS / "store"  # every run's records, accumulated (harness.report.store)
GOLDENS = REPO / "goldens"
FIXTURES = PACKAGE / "fixtures"
WORKER = PACKAGE / "target" / "worker.py"
PRESETS = FIXTURES / "presets.py"
FAMILIES = FIXTURES / "families.py"  # the presets of other architecture families


def cache_dir() -> Path:
    """Built presets and other derived files: $HARNESS_CACHE, else ~/.cache/harness."""
    env = os.environ.get("HARNESS_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "harness"


def store_dir() -> Path:
    """The results store: $HARNESS_STORE, else reports/store."""
    env = os.environ.get("HARNESS_STORE")
    return Path(env) if env else STORE
