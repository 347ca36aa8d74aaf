"""Host side: a hard memory cap on one worker process and its children.

Enforcement, strongest first:

1. a child cgroup under this process's own cgroup (v2 `memory.max`, or v1
   `memory.limit_in_bytes`): the kernel's OOM killer ends the worker at the cap;
2. a transient `systemd-run --user --scope -p MemoryMax=...` around the worker command;
3. a watchdog thread that sums the RSS of the worker and its descendants every few ms
   and SIGKILLs them all when the sum passes the cap (best effort: it can overshoot by
   what the worker allocates in one poll, and shared pages count in full).

Memory a process touched before it joined a cgroup stays charged where it was, so a
worker should join first thing: `wrap()` joins before exec, a forked child writes its
own pid to `procs_file` before anything else.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
import weakref
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import TracebackType
    from typing import Self

METHODS = ("cgroup-v2", "cgroup-v1", "systemd-run", "watchdog")
GROUP_PREFIX = "harness-budget-"
MIB = 1024 * 1024
_PAGE = os.sysconf("SC_PAGE_SIZE")
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


# --- where this process's cgroups live -----------------------------------------------


def _unescape(path: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as octal: \040 etc.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _cgroup_mounts(mountinfo_text: str) -> dict[int, list[tuple[str, str]]]:
    """{1: [(root, mountpoint)] of v1 memory hierarchies, 2: [...] of cgroup2 mounts}."""
    mounts: dict[int, list[tuple[str, str]]] = {1: [], 2: []}
    for line in mountinfo_text.splitlines():
        fields = line.split()
        sep = fields.index("-") if "-" in fields else len(fields)
        if len(fields) < sep + 4:
            continue
        fstype, options = fields[sep + 1], fields[sep + 3].split(",")
        where = (_unescape(fields[3]), _unescape(fields[4]))
        if fstype == "cgroup2":
            mounts[2].append(where)
        elif fstype == "cgroup" and "memory" in options:
            mounts[1].append(where)
    return mounts


def own_groups(cgroup_text: str, mountinfo_text: str) -> dict[int, Path]:
    """{1: v1 memory group dir, 2: v2 group dir} of a process, from its /proc files."""
    mounts = _cgroup_mounts(mountinfo_text)
    found: dict[int, Path] = {}
    for line in cgroup_text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hier_id, controllers, path = parts
        if hier_id == "0" and not controllers:
            version = 2
        elif "memory" in controllers.split(","):
            version = 1
        else:
            continue
        for root, mountpoint in mounts[version]:
            # A mount of a subtree (root != "/") only shows groups below that subtree.
            if root in {"/", path} or path.startswith(root.rstrip("/") + "/"):
                rel = path if root == "/" else path[len(root) :]
                found[version] = Path(mountpoint) / rel.lstrip("/")
                break
    return found


def _own_groups() -> dict[int, Path]:
    try:
        cgroup = Path("/proc/self/cgroup").read_text(encoding="utf-8")
        mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8")
    except OSError:
        return {}
    return own_groups(cgroup, mountinfo)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _counter(text: str | None, key: str) -> int | None:
    """The value of `key N` in a flat-keyed file such as memory.events."""
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return None


def _number(path: Path) -> int | None:
    text = _read(path)
    return int(text) if text is not None and text.strip().isdigit() else None


def _pids(procs: Path) -> list[str]:
    return [p for p in (_read(procs) or "").split() if p.isdigit()]


def _remove_group(group: Path, parent: Path, wait_s: float = 2.0) -> None:
    """Move any pid left in `group` back to `parent`, then rmdir it (idempotent)."""
    deadline = time.monotonic() + wait_s
    while True:
        for pid in _pids(group / "cgroup.procs"):
            # A pid that exits meanwhile is gone from the group anyway.
            with contextlib.suppress(OSError):
                (parent / "cgroup.procs").write_text(pid, encoding="utf-8")
        try:
            group.rmdir()
        except FileNotFoundError:
            return
        except OSError as exc:
            # EBUSY while a killed process is still exiting.
            if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                raise BudgetError(f"could not remove cgroup {group}: {exc}") from exc
            time.sleep(0.01)
        else:
            return


def _quiet_remove(group: Path, parent: Path) -> None:
    # The finalizer at interpreter exit: best effort, never a traceback.
    with contextlib.suppress(BudgetError, OSError):
        _remove_group(group, parent)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _sweep_stale(own: Path) -> None:
    """Remove empty groups left by harness processes that died without cleaning up."""
    with contextlib.suppress(OSError):
        for child in own.iterdir():
            owner = child.name.removeprefix(GROUP_PREFIX).split("-", 1)[0]
            mine = child.name.startswith(GROUP_PREFIX) and owner.isdigit()
            if mine and int(owner) != os.getpid() and not _pid_alive(int(owner)):
                with contextlib.suppress(OSError):
                    child.rmdir()


def _group_name(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:60] or "run"
    return f"{GROUP_PREFIX}{os.getpid()}-{safe}-{secrets.token_hex(3)}"


def _make_group(version: int, own: Path, limit: int, name: str) -> tuple[Path, bool]:
    """Create and configure a child group; returns (dir, swap capped). Removes it on failure."""
    if version == 2:
        enabled = (_read(own / "cgroup.subtree_control") or "").split()
        # Enabling the controller ourselves would need an empty parent (no internal
        # processes) and would change the parent for everyone: only use it when on.
        if "memory" not in enabled:
            raise BudgetError(f"memory controller not enabled below {own}")
    group = own / _group_name(name)
    group.mkdir()
    try:
        swap = False
        if version == 2:
            (group / "memory.max").write_text(str(limit), encoding="utf-8")
            if (group / "memory.swap.max").exists():
                (group / "memory.swap.max").write_text("0", encoding="utf-8")
                swap = True
            with contextlib.suppress(OSError):
                # Kill the worker's whole tree together, not one child of it.
                (group / "memory.oom.group").write_text("1", encoding="utf-8")
        else:
            (group / "memory.limit_in_bytes").write_text(str(limit), encoding="utf-8")
            memsw = group / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                with contextlib.suppress(OSError):
                    memsw.write_text(str(limit), encoding="utf-8")
                    swap = True
            if not (group / "memory.oom_control").exists():
                raise BudgetError(f"{group} has no memory.oom_control")
    except BaseException:
        _quiet_remove(group, own)
        raise
    return group, swap


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


def available_methods(*, can_wrap: bool = True) -> tuple[str, ...]:
    """The enforcement methods that work for this process, strongest first."""
    groups = _own_groups()
    found: list[str] = []
    for version in (2, 1):
        if version in groups:
            try:
                group, _ = _make_group(version, groups[version], 64 * MIB, "probe")
            except (BudgetError, OSError):
                continue
            _remove_group(group, groups[version])
            found.append(f"cgroup-v{version}")
    if can_wrap and systemd_run_available():
        found.append("systemd-run")
    return (*found, "watchdog")


# --- the watchdog ----------------------------------------------------------------------


def _stat(pid: str) -> tuple[int, int] | None:
    """(ppid, pgrp) of a process, from /proc/<pid>/stat."""
    text = _read(Path("/proc", pid, "stat"))
    if text is None or ")" not in text:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[2])


def process_tree(root: int) -> list[int]:
    """`root`, its descendants and the members of its process group that still exist."""
    children: dict[int, list[int]] = {}
    members: list[int] = []
    for path in Path("/proc").iterdir():
        entry = path.name
        if not entry.isdigit():
            continue
        info = _stat(entry)
        if info is None:
            continue
        children.setdefault(info[0], []).append(int(entry))
        if info[1] == root:
            members.append(int(entry))
    seen = {root} if Path("/proc", str(root)).exists() else set()
    todo = [root]
    while todo:
        for kid in children.get(todo.pop(), []):
            if kid not in seen:
                seen.add(kid)
                todo.append(kid)
    seen.update(members)
    return sorted(seen)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (0 when it is gone or a zombie)."""
    text = _read(Path("/proc", str(pid), "statm"))
    fields = (text or "").split()
    return int(fields[1]) * _PAGE if len(fields) > 1 else 0


class _Watchdog:
    RESCAN_S = 0.05  # how often the process tree is listed again; RSS is read every poll

    def __init__(self, limit: int, poll_s: float) -> None:
        self.limit = limit
        self.poll_s = poll_s
        self.killed = False
        self.peak = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, pid: int) -> None:
        if self._thread is not None and self._thread.is_alive():
            raise BudgetError("the watchdog already watches a process")
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, args=(pid,), name=f"budget-watchdog-{pid}", daemon=True
        )
        self._thread.start()

    def _run(self, root: int) -> None:
        pids: list[int] = []
        rescan = 0.0
        while True:
            now = time.monotonic()
            if now >= rescan:
                pids, rescan = process_tree(root), now + self.RESCAN_S
                if not pids:
                    return
            total = sum(rss_bytes(p) for p in pids)
            self.peak = max(self.peak, total)
            if total > self.limit:
                self.killed = True  # before the kill, so whoever sees the exit sees the flag
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                return
            if self._stop.wait(self.poll_s):
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


# --- the budget --------------------------------------------------------------------------


@dataclass
class _State:
    """What changes over a budget's life; the Budget itself is frozen."""

    watchdog: _Watchdog
    oom_base: int = 0
    finalizer: weakref.finalize[[Path, Path], Budget] | None = None
    closed: bool = False


@dataclass(frozen=True, eq=False)
class Budget:
    """A hard memory cap for one worker. Use as a context manager; `close()` removes groups."""

    limit_bytes: int
    method: str
    name: str = "run"
    group: Path | None = None  # the cgroup this budget created (cgroup methods)
    parent: Path | None = None  # where leftover pids go back to before the rmdir
    unit: str | None = None  # the systemd scope's unit name (systemd-run)
    swap_capped: bool = False
    poll_s: float = 0.005
    _state: _State = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown budget method {self.method!r}; one of {METHODS}")
        state = _State(_Watchdog(self.limit_bytes, self.poll_s))
        if self.group is not None and self.parent is not None:
            # Runs on close(), on garbage collection and at interpreter exit.
            state.finalizer = weakref.finalize(self, _quiet_remove, self.group, self.parent)
        object.__setattr__(self, "_state", state)

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
        """The strongest enforcement available (or exactly `method`, else BudgetError).

        can_wrap=False leaves out systemd-run, which can only start a new command: a
        fork-server child cannot be wrapped.
        """
        if limit_bytes <= 0:
            raise ValueError("the memory budget must be positive")
        if method is not None and method not in METHODS:
            raise ValueError(f"unknown budget method {method!r}; one of {METHODS}")
        wanted = (method,) if method else METHODS
        groups = _own_groups()
        reasons: list[str] = []
        for version in (2, 1):
            if f"cgroup-v{version}" not in wanted:
                continue
            if version not in groups:
                reasons.append(f"no cgroup v{version} memory hierarchy for this process")
                continue
            own = groups[version]
            _sweep_stale(own)
            try:
                group, swap = _make_group(version, own, limit_bytes, name)
            except (BudgetError, OSError) as exc:
                reasons.append(f"cgroup v{version}: {exc}")
                continue
            return cls(limit_bytes, f"cgroup-v{version}", name, group, own, None, swap, poll_s)
        if "systemd-run" in wanted:
            if can_wrap and systemd_run_available():
                unit = _group_name(name).replace("_", "-") + ".scope"
                return cls(limit_bytes, "systemd-run", name, None, None, unit, True, poll_s)
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

    def record_fields(self) -> dict[str, object]:
        return {"budget_method": self.method, "budget_mb": self.budget_mb}

    def wrap(self, cmd: Sequence[str]) -> list[str]:
        """An argv that runs `cmd` under the cap (unchanged for the watchdog: see started())."""
        if self.procs_file is not None:
            # The shell joins the group, then execs: the worker is capped from its first page.
            return ["/bin/sh", "-c", 'echo $$ > "$0" && exec "$@"', str(self.procs_file), *cmd]
        if self.method == "systemd-run":
            return [
                "systemd-run", "--user", "--scope", "--quiet", f"--unit={self.unit}",
                "-p", f"MemoryMax={self.limit_bytes}", "-p", "MemorySwapMax=0", "--", *cmd,
            ]  # fmt: skip
        return list(cmd)

    def attach(self, pid: int) -> None:
        """Put a running process under the cap (memory it already has is not moved)."""
        if self.procs_file is not None:
            self.procs_file.write_text(str(pid), encoding="utf-8")
        elif self.method == "watchdog":
            self.start_watchdog(pid)
        else:
            raise BudgetError("systemd-run can only cap a command it starts: use wrap()")

    def started(self, pid: int) -> None:
        """Call once the worker runs (wrapped, or a fork child that joined via procs_file)."""
        if self.method == "watchdog":
            self.start_watchdog(pid)

    def start_watchdog(self, pid: int) -> None:
        self._state.watchdog.start(pid)

    def stop(self) -> None:
        """Stop the watchdog, if one runs (keeps what it saw for oom_killed/peak_bytes)."""
        self._state.watchdog.stop()

    def _oom_count(self) -> int:
        """OOM kills in the group so far, from its own counters."""
        if self.group is None:
            return 0
        if self.method == "cgroup-v2":
            return _counter(_read(self.group / "memory.events"), "oom_kill") or 0
        kills = _counter(_read(self.group / "memory.oom_control"), "oom_kill")
        # Kernels before 4.13 have no oom_kill count: hitting the limit is the best sign.
        return kills if kills is not None else _number(self.group / "memory.failcnt") or 0

    def oom_killed(self) -> bool:
        """Whether the kernel or the watchdog killed for this budget since the last reset."""
        if self.method == "watchdog":
            return self._state.watchdog.killed
        if self.method == "systemd-run":
            try:
                shown = subprocess.run(
                    ["systemctl", "--user", "show", "-p", "Result", "--value", str(self.unit)],
                    capture_output=True, text=True, timeout=10, check=False,
                )  # fmt: skip
            except (OSError, subprocess.TimeoutExpired):
                return False
            return shown.stdout.strip() == "oom-kill"
        return self._oom_count() > self._state.oom_base

    def peak_bytes(self) -> int | None:
        """The highest usage the method saw since the last reset, when it knows one."""
        if self.method == "watchdog":
            return self._state.watchdog.peak or None
        if self.group is None:
            return None
        name = "memory.peak" if self.method == "cgroup-v2" else "memory.max_usage_in_bytes"
        return _number(self.group / name)

    def reset(self) -> None:
        """Start counting kills and the peak afresh (for a group reused between runs)."""
        self.stop()
        self._state.watchdog.killed = False
        self._state.watchdog.peak = 0
        if self.group is not None and self.method == "cgroup-v1":
            for counter in ("memory.max_usage_in_bytes", "memory.failcnt"):
                with contextlib.suppress(OSError):
                    (self.group / counter).write_text("0", encoding="utf-8")
        self._state.oom_base = self._oom_count()

    def close(self) -> None:
        """Stop the watchdog and remove the group (leftover pids go back to the parent)."""
        if self._state.closed:
            return
        self.stop()
        if self.group is not None and self.parent is not None:
            _remove_group(self.group, self.parent)
            if self._state.finalizer is not None:
                self._state.finalizer.detach()
        if self.method == "systemd-run":
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                subprocess.run(
                    ["systemctl", "--user", "reset-failed", str(self.unit)],
                    capture_output=True, timeout=10, check=False,
                )  # fmt: skip
        self._state.closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def classify_kill(budget: Budget | None, exit_signal: int | None) -> str | None:
    """'memory_budget' when a SIGKILL came from the budget, else None.

    `exit_signal` is the signal number (Popen's -returncode, or the fork-server's reply).
    """
    if budget is None or exit_signal is None or abs(exit_signal) != signal.SIGKILL:
        return None
    return "memory_budget" if budget.oom_killed() else None
