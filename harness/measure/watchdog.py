"""The last-resort memory cap: a thread that sums the RSS of a process tree and kills it.
Best effort: it can overshoot by one poll's allocations, and shared pages count in full."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path

from harness.measure.cgroups import read_text as _read

_PAGE = os.sysconf("SC_PAGE_SIZE")


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
        kids = [kid for kid in children.get(todo.pop(), []) if kid not in seen]
        seen.update(kids)
        todo += kids
    seen.update(members)
    return sorted(seen)


def rss_bytes(pid: int) -> int:
    """Resident set size of a process (0 when it is gone or a zombie)."""
    text = _read(Path("/proc", str(pid), "statm"))
    fields = (text or "").split()
    return int(fields[1]) * _PAGE if len(fields) > 1 else 0


class Watchdog:
    RESCAN_S = 0.05  # how often the process tree is listed again; RSS is read every poll

    def __init__(self, limit: int, poll_s: float) -> None:
        self.limit = limit
        self.poll_s = poll_s
        self.killed = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, pid: int) -> None:
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError("the watchdog already watches a process")
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
