"""This process's cgroups: where they are mounted, and child groups made and removed safely."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import time
from pathlib import Path

GROUP_PREFIX = "harness-budget-"


class CgroupError(Exception):
    """A group could not be set up or removed."""


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


def current() -> dict[int, Path]:
    try:
        cgroup = Path("/proc/self/cgroup").read_text(encoding="utf-8")
        mountinfo = Path("/proc/self/mountinfo").read_text(encoding="utf-8")
    except OSError:
        return {}
    return own_groups(cgroup, mountinfo)


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def counter(text: str | None, key: str) -> int | None:
    """The value of `key N` in a flat-keyed file such as memory.events."""
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return None


def number(path: Path) -> int | None:
    text = read_text(path)
    return int(text) if text is not None and text.strip().isdigit() else None


def _pids(procs: Path) -> list[str]:
    return [p for p in (read_text(procs) or "").split() if p.isdigit()]


def remove_group(group: Path, parent: Path, wait_s: float = 2.0) -> None:
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
                raise CgroupError(f"could not remove cgroup {group}: {exc}") from exc
            time.sleep(0.01)
        else:
            return


def quiet_remove(group: Path, parent: Path) -> None:
    # The finalizer at interpreter exit: best effort, never a traceback.
    with contextlib.suppress(CgroupError, OSError):
        remove_group(group, parent)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_stale(own: Path) -> None:
    """Remove empty groups left by harness processes that died without cleaning up."""
    with contextlib.suppress(OSError):
        for child in own.iterdir():
            owner = child.name.removeprefix(GROUP_PREFIX).split("-", 1)[0]
            mine = child.name.startswith(GROUP_PREFIX) and owner.isdigit()
            if mine and int(owner) != os.getpid() and not _pid_alive(int(owner)):
                with contextlib.suppress(OSError):
                    child.rmdir()


def group_name(name: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._")[:60] or "run"
    return f"{GROUP_PREFIX}{os.getpid()}-{safe}-{secrets.token_hex(3)}"


def make_group(version: int, own: Path, limit: int, name: str) -> Path:
    """Create and configure a child group; removes it on failure."""
    if version == 2:
        enabled = (read_text(own / "cgroup.subtree_control") or "").split()
        # Enabling the controller ourselves would need an empty parent (no internal
        # processes) and would change the parent for everyone: only use it when on.
        if "memory" not in enabled:
            raise CgroupError(f"memory controller not enabled below {own}")
    group = own / group_name(name)
    group.mkdir()
    try:
        if version == 2:
            (group / "memory.max").write_text(str(limit), encoding="utf-8")
            if (group / "memory.swap.max").exists():
                (group / "memory.swap.max").write_text("0", encoding="utf-8")
            with contextlib.suppress(OSError):
                # Kill the worker's whole tree together, not one child of it.
                (group / "memory.oom.group").write_text("1", encoding="utf-8")
        else:
            (group / "memory.limit_in_bytes").write_text(str(limit), encoding="utf-8")
            memsw = group / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                with contextlib.suppress(OSError):
                    memsw.write_text(str(limit), encoding="utf-8")
            if not (group / "memory.oom_control").exists():
                raise CgroupError(f"{group} has no memory.oom_control")
    except BaseException:
        quiet_remove(group, own)
        raise
    return group
