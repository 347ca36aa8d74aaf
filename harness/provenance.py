"""What made a record: the harness's version (with the git commit of a checkout), a hash of
the worker code that measured, and the machine's fingerprint. A leaf: it imports nothing of
the harness but paths."""

from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import json
import subprocess
from typing import TYPE_CHECKING

from harness import paths

if TYPE_CHECKING:
    from collections.abc import Mapping


@functools.cache
def harness_version() -> str:
    """``0.1.0``, or ``0.1.0+g<sha>`` (``.dirty`` with local changes) in a git checkout."""
    try:
        version = importlib.metadata.version("harness")
    except importlib.metadata.PackageNotFoundError:
        version = "0+unknown"

    def git(*args: str) -> str:
        command = ["git", "-C", str(paths.REPO), *args]
        return subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=10
        ).stdout

    try:
        sha = git("rev-parse", "--short=12", "HEAD").strip()
        dirty = git("status", "--porcelain", "--", "harness")
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{sha}{'.dirty' if dirty.strip() else ''}" if sha else version


@functools.cache
def worker_sha256() -> str:
    """The worker file's sha256, 16 hex digits: runs measured by other worker code differ."""
    return hashlib.sha256(paths.WORKER.read_bytes()).hexdigest()[:16]


def machine_fingerprint(machine: Mapping[str, object]) -> str:
    """Short stable id so records from different machines are never averaged together."""
    keys = ("cpu", "cores", "mem_total_mb", "arch", "gpu")
    text = json.dumps({k: machine.get(k) for k in keys}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]
