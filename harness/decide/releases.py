"""Released versions of a package from the index pip is set up for, in version order.

`pip index versions NAME`, or on an older pip the error of `pip download NAME==0`; finals only,
as pip chooses. The listing is cached in the run folder so that a re-run works offline.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable
from typing import TYPE_CHECKING

from packaging.version import InvalidVersion, Version

from harness import paths
from harness.config.sweeps import ordered

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path

_AVAILABLE = re.compile(r"Available versions:\s*(?P<list>[^\n]+)")
_FROM_VERSIONS = re.compile(r"\(from versions:\s*(?P<list>[^)]*)\)")

Runner = Callable[[list[str]], subprocess.CompletedProcess[str]]


class ReleasesError(Exception):
    """The index could not be asked, or its answer could not be read."""


def parse(text: str) -> list[str]:
    """Versions from pip's output: 'Available versions: a, b' or '(from versions: a, b)'."""
    match = _AVAILABLE.search(text) or _FROM_VERSIONS.search(text)
    if match is None:
        return []
    return [v.strip() for v in match["list"].split(",") if v.strip() and v.strip() != "none"]


def between(versions: Sequence[str], good: str, bad: str) -> list[str]:
    """good, the releases after it and before bad, and bad; both ends must be released."""
    try:
        lo, hi = Version(good), Version(bad)
    except InvalidVersion as exc:
        raise ReleasesError(str(exc)) from None
    listed = ordered(versions, pre=lo.is_prerelease or hi.is_prerelease)
    known = {Version(v): v for v in listed}
    for end in (lo, hi):
        if end not in known:
            near = [v for v in listed if Version(v).release[:2] == end.release[:2]]
            minor = ".".join(map(str, end.release[:2]))
            hint = f" (released in {minor}: {', '.join(near)})" if near else ""
            raise ReleasesError(f"{end} is not a released version{hint}")
    if lo >= hi:
        raise ReleasesError(f"the good version {good} must be older than the bad one {bad}")
    return [known[lo], *(v for v in listed if lo < Version(v) < hi), known[hi]]


def _pip(args: list[str]) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "pip", *args, "--disable-pip-version-check"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)


def query(package: str, runner: Runner = _pip) -> tuple[list[str], str]:
    """Every version the index offers, and the command that said so."""
    proc = runner(["index", "versions", package])
    found = parse(proc.stdout + proc.stderr)
    if found:
        return found, "pip index versions"
    with tempfile.TemporaryDirectory(prefix="harness-releases-") as tmp:
        proc = runner(["download", "--no-deps", "--dest", tmp, f"{package}==0"])
    found = parse(proc.stdout + proc.stderr)
    if found:
        return found, "pip download (from versions: ...)"
    tail = " | ".join((proc.stdout + proc.stderr).strip().splitlines()[-3:])
    raise ReleasesError(f"the package index did not list {package}: {tail[-400:]}")


def listing(
    package: str,
    cache: Path,
    *,
    must_hold: Sequence[str] = (),
    refresh: bool = False,
    runner: Runner = _pip,
) -> list[str]:
    """The cached listing when it holds `must_hold`; else the index's, which is then cached."""
    if cache.exists() and not refresh:
        data = json.loads(cache.read_text(encoding="utf-8"))
        versions: list[str] = data["versions"]
        have = {Version(v) for v in ordered(versions, pre=True)}
        if all(Version(v) in have for v in must_hold):
            return versions
    versions, source = query(package, runner)
    cache.parent.mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    data = {"package": package, "source": source, "queried_at": now, "versions": versions}
    cache.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    return versions


def index_listing(*, refresh: bool = False, runner: Runner = _pip) -> Callable[[str], list[str]]:
    """A package's released versions for sweeps, cached with the date they were asked for
    under the harness cache (`--refresh` asks the index again); each package asked once."""
    asked: dict[str, list[str]] = {}

    def listed(package: str) -> list[str]:
        if package not in asked:
            cache = paths.cache_dir() / "releases" / f"{package}.json"
            asked[package] = listing(package, cache, refresh=refresh, runner=runner)
        return asked[package]

    return listed


def listed_at(package: str) -> str | None:
    """When the cached listing of `package` was asked for (for the run manifest)."""
    cache = paths.cache_dir() / "releases" / f"{package}.json"
    try:
        return str(json.loads(cache.read_text(encoding="utf-8"))["queried_at"])
    except (OSError, ValueError, KeyError):
        return None
