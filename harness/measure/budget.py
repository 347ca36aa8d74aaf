"""Host side: a hard memory cap on one worker process and its children. Strongest first: a child
cgroup of our own (v2 or v1; the kernel's OOM killer ends the worker at the cap), a transient
`systemd-run --user --scope`, or a watchdog thread summing the tree's RSS (best effort)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import weakref
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from harness.measure import cgroups
from harness.measure.watchdog import Watchdog
from harness.metrics import MIB

if TYPE_CHECKING:
    from collections.abc import Sequence
    from pathlib import Path
    from typing import Self

METHODS = ("cgroup-v2", "cgroup-v1", "systemd-run", "watchdog")

_UNITS = {
    "": 1, "b": 1,
    "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
    "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
}  # fmt: skip
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-zA-Z]*)\s*")


class BudgetError(Exception):
    """The asked-for enforcement is unavailable, or a group could not be set up or removed."""


def parse_size(text: str) -> int:
    """'2GiB' -> 2147483648. Units: B, KB/MB/GB/TB (powers of 1000), KiB..TiB; plain bytes."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _UNITS:
        raise ValueError(
            f"bad size {text!r}: expected a number with an optional unit "
            "(B, KiB, MiB, GiB, TiB, KB, MB, GB, TB), e.g. 2GiB"
        )
    try:
        value = int(Decimal(match.group(1)) * _UNITS[unit])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only decimals
        raise ValueError(f"bad size {text!r}") from exc
    if value <= 0:
        raise ValueError(f"bad size {text!r}: must be at least one byte")
    return value


@functools.cache
def systemd_run_available() -> bool:
    """Whether `systemd-run --user --scope` with a MemoryMax works here (probed once)."""
    exe = shutil.which("systemd-run")
    if exe is None:
        return False
    try:
        probe = subprocess.run(
            [exe, "--user", "--scope", "--quiet", "-p", "MemoryMax=1G", "true"],
            capture_output=True, timeout=10, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _systemctl(*args: str) -> str | None:
    """`systemctl --user ARGS`'s output; None when it could not run."""
    try:
        proc = subprocess.run(["systemctl", "--user", *args], capture_output=True, timeout=10,
                              check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.decode(errors="replace")


@dataclass(eq=False)
class Budget:
    """A hard memory cap for one worker. Use as a context manager; `close()` removes groups."""

    limit_bytes: int
    method: str
    name: str = "run"
    group: Path | None = None  # the cgroup this budget created (cgroup methods)
    parent: Path | None = None  # where leftover pids go back to before the rmdir
    unit: str | None = None  # the systemd scope's unit name (systemd-run)
    poll_s: float = 0.005
    _watchdog: Watchdog = field(init=False, repr=False)
    _closed: bool = field(default=False, init=False, repr=False)
    _finalizer: weakref.finalize[[Path, Path], Budget] | None = field(
        default=None, init=False, repr=False
    )

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown budget method {self.method!r}; one of {METHODS}")
        self._watchdog = Watchdog(self.limit_bytes, self.poll_s)
        if self.group is not None and self.parent is not None:
            # Runs on close(), on garbage collection and at interpreter exit.
            self._finalizer = weakref.finalize(self, cgroups.quiet_remove, self.group, self.parent)

    @classmethod
    def create(
        cls,
        limit_bytes: int,
        name: str = "run",
        *,
        method: str | None = None,
        can_wrap: bool = True,
        poll_s: float = 0.005,
    ) -> Budget:
        """The strongest enforcement available (or exactly `method`, else BudgetError);
        can_wrap=False leaves out systemd-run, which cannot wrap a fork-server child."""
        if limit_bytes <= 0:
            raise ValueError("the memory budget must be positive")
        if method is not None and method not in METHODS:
            raise ValueError(f"unknown budget method {method!r}; one of {METHODS}")
        wanted = (method,) if method else METHODS
        groups = cgroups.current()
        reasons: list[str] = []
        for version in (2, 1):
            if f"cgroup-v{version}" not in wanted:
                continue
            if version not in groups:
                reasons.append(f"no cgroup v{version} memory hierarchy for this process")
                continue
            own = groups[version]
            cgroups.sweep_stale(own)
            try:
                group = cgroups.make_group(version, own, limit_bytes, name)
            except (cgroups.CgroupError, OSError) as exc:
                reasons.append(f"cgroup v{version}: {exc}")
                continue
            return cls(limit_bytes, f"cgroup-v{version}", name, group, own, None, poll_s)
        if "systemd-run" in wanted:
            if can_wrap and systemd_run_available():
                unit = cgroups.group_name(name).replace("_", "-") + ".scope"
                return cls(limit_bytes, "systemd-run", name, None, None, unit, poll_s)
            reasons.append("systemd-run --user --scope is not usable here")
        if "watchdog" in wanted:
            return cls(limit_bytes, "watchdog", name, poll_s=poll_s)
        raise BudgetError(f"memory budget method {method} unavailable: {'; '.join(reasons)}")

    @property
    def budget_mb(self) -> float:
        return round(self.limit_bytes / MIB, 1)

    @property
    def procs_file(self) -> Path | None:
        """A file a process writes its own pid into to join the cap (cgroup methods)."""
        return self.group / "cgroup.procs" if self.group is not None else None

    def wrap(self, cmd: Sequence[str]) -> list[str]:
        """An argv that runs `cmd` under the cap (unchanged for the watchdog: see started())."""
        if self.procs_file is not None:
            # Memory touched before joining stays charged where it was: the shell joins the
            # group, then execs, so the worker is capped from its first page.
            return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.procs_file), *cmd]
        if self.method == "systemd-run":
            return [
                "systemd-run", "--user", "--scope", "--quiet", f"--unit={self.unit}",
                "-p", f"MemoryMax={self.limit_bytes}", "-p", "MemorySwapMax=0", "--", *cmd,
            ]  # fmt: skip
        return list(cmd)

    def started(self, pid: int) -> None:
        """Call once the worker runs (wrapped, or a fork child that joined via procs_file)."""
        if self.method == "watchdog":
            self._watchdog.start(pid)

    def stop(self) -> None:
        """Stop the watchdog, if one runs (keeps what it saw for oom_killed)."""
        self._watchdog.stop()

    def _oom_count(self) -> int:
        """OOM kills in the group so far, from its own counters."""
        if self.group is None:
            return 0
        if self.method == "cgroup-v2":
            return cgroups.counter(cgroups.read_text(self.group / "memory.events"), "oom_kill") or 0
        kills = cgroups.counter(cgroups.read_text(self.group / "memory.oom_control"), "oom_kill")
        # Kernels before 4.13 have no oom_kill count: hitting the limit is the best sign.
        return kills if kills is not None else cgroups.number(self.group / "memory.failcnt") or 0

    def refaults(self) -> int:
        """Pages the group read back soon after the cap evicted them (the kernel's workingset
        refaults, v1 and v2 alike; v1's failcnt stays 0 on recent kernels)."""
        if self.group is None:
            return 0
        text = cgroups.read_text(self.group / "memory.stat")
        keys = ("workingset_refault_file", "workingset_refault_anon", "workingset_refault")
        return sum(cgroups.counter(text, key) or 0 for key in keys)

    def oom_killed(self) -> bool:
        """Whether the kernel or the watchdog killed for this budget since the last reset."""
        if self.method == "watchdog":
            return self._watchdog.killed
        if self.method == "systemd-run":
            shown = _systemctl("show", "-p", "Result", "--value", str(self.unit))
            return shown is not None and shown.strip() == "oom-kill"
        return self._oom_count() > 0  # a group serves one run

    def close(self) -> None:
        """Stop the watchdog and remove the group (leftover pids go back to the parent)."""
        if self._closed:
            return
        self.stop()
        if self.group is not None and self.parent is not None:
            cgroups.remove_group(self.group, self.parent)
            if self._finalizer is not None:
                self._finalizer.detach()
        if self.method == "systemd-run":
            _systemctl("reset-failed", str(self.unit))
        self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def classify_kill(
    budget: Budget | None, exit_signal: int | None, *, timed_out: bool = False
) -> str | None:
    """'memory_budget' when a SIGKILL (a signal number, either sign) came from the budget, or
    when a run that timed out was thrashing at it: a cap just above the need may never kill,
    the kernel evicting file pages (weights, libraries) the run reads again until the timeout."""
    if budget is None:
        return None
    if timed_out:
        return "memory_budget" if budget.refaults() > 0 else None
    if exit_signal is None or abs(exit_signal) != signal.SIGKILL:
        return None
    return "memory_budget" if budget.oom_killed() else None


def evict_page_cache(folder: Path) -> int:
    """Drop the clean page-cache pages of a model folder's weight files; returns the bytes.

    A page read earlier by another process (the preset's builder, an uncapped run) stays
    charged to that process's cgroup, so a capped run that maps the file gets it for free
    and a cap never bites. Evicted first, every page the capped run touches is its own.
    """
    dropped = 0
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    for path in files:
        if path.suffix not in (".safetensors", ".bin") or not path.is_file():
            continue
        with path.open("rb") as fh:
            os.fsync(fh.fileno())  # dirty pages (a preset just built) are not dropped
            os.posix_fadvise(fh.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        dropped += path.stat().st_size
    return dropped
