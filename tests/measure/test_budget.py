"""Memory budget: real enforcement on real processes, and the parsing around it."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from harness.measure import budget, cgroups, watchdog
from harness.measure.budget import Budget, BudgetError, classify_kill, parse_size
from harness.metrics import MIB

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

# Allocates argv[1] MiB in 8 MiB steps, writing one byte per page so every page is
# resident; with argv[2] it first writes its own pid to that file (how a fork-server
# child joins the group).
CHILD = r"""
import os, sys, time
if len(sys.argv) > 2:
    with open(sys.argv[2], "w") as f:
        f.write(str(os.getpid()))
held = []
for _ in range(int(sys.argv[1]) // 8):
    b = bytearray(8 << 20)
    b[::4096] = b"\x01" * len(range(0, len(b), 4096))
    held.append(b)
time.sleep(0.03)
"""


def _methods_here() -> tuple[str, ...]:
    """What Budget.create can use for this process, strongest first (probes are removed)."""
    found: list[str] = []
    for method in ("cgroup-v2", "cgroup-v1"):
        with contextlib.suppress(BudgetError), Budget.create(64 * MIB, "probe", method=method):
            found.append(method)
    if budget.systemd_run_available():
        found.append("systemd-run")
    return (*found, "watchdog")


METHODS_HERE = _methods_here()
CGROUP = next((m for m in METHODS_HERE if m.startswith("cgroup")), None)
needs_cgroup = pytest.mark.skipif(
    CGROUP is None,
    reason="no writable cgroup memory controller for this process "
    "(cgroup v2 needs 'memory' in the own group's cgroup.subtree_control; v1 needs root)",
)


@pytest.fixture(autouse=True)
def no_leftover_groups() -> Iterator[None]:
    """Every test leaves this process's cgroup with the budget groups it found."""
    own = cgroups.own_groups(
        Path("/proc/self/cgroup").read_text(), Path("/proc/self/mountinfo").read_text()
    )

    def ours() -> set[Path]:
        # Only this process's groups: a bench running beside the tests makes its own.
        mine = f"{cgroups.GROUP_PREFIX}{os.getpid()}-*"
        return {g for d in own.values() if d.is_dir() for g in d.glob(mine)}

    before = ours()
    yield
    assert ours() == before


def run_child(b: Budget, need_mib: int) -> int:
    proc = subprocess.Popen(b.wrap([sys.executable, "-c", CHILD, str(need_mib)]))
    b.started(proc.pid)
    code = proc.wait(timeout=60)
    b.stop()
    return code


def attach(b: Budget, pid: int) -> None:
    """Put a running process under the cap the way the product's paths do: the cgroup's
    procs file (what a joining child writes), else the watchdog."""
    if b.procs_file is not None:
        b.procs_file.write_text(str(pid), encoding="utf-8")
    else:
        b.started(pid)


def group_peak(b: Budget) -> int | None:
    if b.group is None:
        return None
    name = "memory.peak" if b.method == "cgroup-v2" else "memory.max_usage_in_bytes"
    return cgroups.number(b.group / name)


def groups_beside(b: Budget) -> set[str]:
    assert b.parent is not None
    return {p.name for p in b.parent.iterdir() if p.is_dir()}


# --- parse_size ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2GiB", 2 * 1024**3),
        ("512MiB", 512 * MIB),
        ("1.5 GiB", 3 * 512 * MIB),
        ("64KiB", 65536),
        ("2GB", 2_000_000_000),
        ("300MB", 300_000_000),
        ("1KB", 1000),
        ("4096", 4096),
        ("4096B", 4096),
        ("1tib", 1024**4),
        (" 8 mib ", 8 * MIB),
    ],
)
def test_parse_size(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["", "GiB", "2 GiBs", "-1GiB", "0", "0MiB", "2 G", "1e9", "x"])
def test_parse_size_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="bad size"):
        parse_size(text)


# --- finding the groups ---------------------------------------------------------------------

MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""


def test_own_groups_v1_and_hybrid() -> None:
    cgroup = "4:memory:/process_api/abc\n1:cpu:/\n0::/user.slice\n"
    assert cgroups.own_groups(cgroup, MOUNTINFO) == {
        1: Path("/sys/fs/cgroup/memory/process_api/abc"),
        2: Path("/sys/fs/cgroup/unified/user.slice"),
    }


def test_own_groups_v2_only_and_subtree_mount() -> None:
    mountinfo = "29 23 0:26 /user.slice /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
    cgroup = "0::/user.slice/user-0.slice/session\\0401.scope\n"
    assert cgroups.own_groups(cgroup, mountinfo) == {
        2: Path("/sys/fs/cgroup/user-0.slice/session\\0401.scope")
    }
    assert cgroups.own_groups("0::/system.slice\n", mountinfo) == {}


# --- real enforcement, with whatever method this machine gives --------------------------------


@needs_cgroup
def test_cgroup_method_is_used_where_writable() -> None:
    with Budget.create(256 * MIB, "pick") as b:
        assert b.method == CGROUP
        assert b.procs_file is not None
        assert b.procs_file.exists()
        assert (b.method, b.budget_mb) == (CGROUP, 256.0)


def test_generous_cap_finishes() -> None:
    with Budget.create(512 * MIB, "generous") as b:
        code = run_child(b, 64)
        assert code == 0
        assert not b.oom_killed()
        assert classify_kill(b, None) is None
        peak = group_peak(b)
        assert peak is None or 64 * MIB <= peak < 512 * MIB


def test_cap_far_below_need_kills() -> None:
    with Budget.create(64 * MIB, "tight") as b:
        code = run_child(b, 512)
        assert code == -signal.SIGKILL
        assert b.oom_killed()
        assert classify_kill(b, -code) == "memory_budget"
        assert classify_kill(b, signal.SIGKILL) == "memory_budget"
        # Only a SIGKILL is the budget's doing.
        assert classify_kill(b, signal.SIGTERM) is None
        assert classify_kill(None, signal.SIGKILL) is None


def test_a_new_budget_after_a_kill_starts_clean() -> None:
    with Budget.create(64 * MIB, "first") as b:
        assert run_child(b, 512) == -signal.SIGKILL
    with Budget.create(64 * MIB, "second") as b:
        assert not b.oom_killed()
        assert run_child(b, 16) == 0
        assert not b.oom_killed()


def test_sigkill_from_elsewhere_is_not_the_budget() -> None:
    with Budget.create(512 * MIB, "other-kill") as b:
        proc = subprocess.Popen(b.wrap([sys.executable, "-c", "import time; time.sleep(30)"]))
        b.started(proc.pid)
        proc.kill()
        assert proc.wait(timeout=10) == -signal.SIGKILL
        b.stop()
        assert classify_kill(b, signal.SIGKILL) is None


# Maps a file twice the cap and reads every page, over and over: the cap keeps evicting pages
# the run reads again, so it never ends and is never killed (a cap just above a worker's need).
THRASH = r"""
import mmap, sys
with open(sys.argv[1], "rb") as fh:
    m = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
    while True:
        for offset in range(0, len(m), 4096):
            m[offset]
"""


def _until_killed(b: Budget, cmd: list[str], done: Callable[[], bool]) -> None:
    """Run `cmd` under `b` until `done()` (or 30 s), then kill it as a run's timeout does."""
    proc = subprocess.Popen(b.wrap(cmd))
    b.started(proc.pid)
    deadline = time.monotonic() + 30
    while not done() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert proc.poll() is None, "it should still be running"
    proc.kill()
    assert proc.wait(timeout=10) == -signal.SIGKILL
    b.stop()


@needs_cgroup
def test_a_run_thrashing_at_the_cap_until_its_timeout_is_the_budgets_doing(tmp_path: Path) -> None:
    # The fit's probe at 274 MiB for tiny-gpt2 timed out this way instead of being killed.
    weights = tmp_path / "model.safetensors"
    with weights.open("wb") as fh:
        for _ in range(16):
            fh.write(os.urandom(8 * MIB))
    budget.evict_page_cache(tmp_path)
    with Budget.create(64 * MIB, "thrash") as b:
        _until_killed(b, [sys.executable, "-c", THRASH, str(weights)], lambda: b.refaults() > 0)
        assert not b.oom_killed()
        assert b.refaults() > 0
        assert classify_kill(b, signal.SIGKILL, timed_out=True) == "memory_budget"
    # A hang that never reaches its cap is not the budget's doing.
    with Budget.create(512 * MIB, "hang") as b:
        started = time.monotonic()
        sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
        _until_killed(b, sleeper, lambda: time.monotonic() - started > 1)
        assert b.refaults() == 0
        assert classify_kill(b, signal.SIGKILL, timed_out=True) is None


# --- the cgroup paths, and cleanup ----------------------------------------------------------


@needs_cgroup
def test_forked_child_joins_by_writing_its_pid(tmp_path: Path) -> None:
    """The fork-server path: the child writes its own pid to procs_file first thing."""
    for cap, need, want in ((64 * MIB, 512, -signal.SIGKILL), (512 * MIB, 64, 0)):
        with Budget.create(cap, "join") as b:
            assert b.procs_file is not None
            proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, str(need), str(b.procs_file)], cwd=tmp_path
            )
            assert proc.wait(timeout=60) == want
            assert b.oom_killed() == (want != 0)


@needs_cgroup
def test_attach_a_running_process() -> None:
    with Budget.create(64 * MIB, "attach") as b:
        proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; sys.stdin.readline();" + CHILD, "512"],
            stdin=subprocess.PIPE,
        )
        assert proc.stdin is not None
        attach(b, proc.pid)
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        assert proc.wait(timeout=60) == -signal.SIGKILL
        assert classify_kill(b, signal.SIGKILL) == "memory_budget"


@needs_cgroup
def test_no_group_left_behind() -> None:
    probe = Budget.create(64 * MIB, "probe")
    before = groups_beside(probe) - {probe.group.name if probe.group else ""}
    probe.close()
    assert groups_beside(probe) == before

    # A kill, an exception inside the block, a live process left in the group.
    with Budget.create(64 * MIB, "killed") as b:
        run_child(b, 512)
    created: list[Budget] = []

    def fail_inside() -> None:
        with Budget.create(64 * MIB, "raised") as b:
            created.append(b)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_inside()
    assert created[0].group is not None
    assert not created[0].group.exists()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with Budget.create(256 * MIB, "leftover") as b:
            attach(b, sleeper.pid)
            assert b.group is not None
            assert b.group.name in Path(f"/proc/{sleeper.pid}/cgroup").read_text()
        # Moved back to the parent group, alive, and the group is gone.
        assert b.group.name not in Path(f"/proc/{sleeper.pid}/cgroup").read_text()
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
    assert groups_beside(b) == before
    b.close()  # idempotent


@needs_cgroup
def test_stale_group_of_a_dead_owner_is_swept() -> None:
    with Budget.create(64 * MIB, "sweep") as b:
        assert b.parent is not None
        dead = subprocess.Popen([sys.executable, "-c", ""])
        dead.wait()
        stale = b.parent / f"{cgroups.GROUP_PREFIX}{dead.pid}-old-000000"
        stale.mkdir()
    with Budget.create(64 * MIB, "sweeper"):
        assert not stale.exists()


def test_unknown_or_unavailable_method() -> None:
    with pytest.raises(ValueError, match="unknown budget method"):
        Budget.create(MIB, method="ulimit")
    with pytest.raises(ValueError, match="positive"):
        Budget.create(0)
    if "systemd-run" not in METHODS_HERE:
        with pytest.raises(BudgetError, match="systemd-run"):
            Budget.create(MIB, method="systemd-run")
    with pytest.raises(BudgetError, match="systemd-run"):
        Budget.create(MIB, method="systemd-run", can_wrap=False)


def test_systemd_run_wraps_the_command() -> None:
    b = Budget(2 * 1024**3, "systemd-run", "x", unit="harness-budget-1-x-abc.scope")
    argv = b.wrap(["python", "worker.py", "run"])
    assert argv[:4] == ["systemd-run", "--user", "--scope", "--quiet"]
    assert "MemoryMax=2147483648" in argv
    assert "MemorySwapMax=0" in argv
    assert argv[argv.index("--") + 1 :] == ["python", "worker.py", "run"]
    assert b.procs_file is None


# --- the watchdog, forced ---------------------------------------------------------------------


def test_watchdog_kills_over_budget_and_spares_under() -> None:
    with Budget.create(64 * MIB, "wd", method="watchdog") as b:
        assert b.method == "watchdog"
        assert b.procs_file is None
        assert b.wrap(["a", "b"]) == ["a", "b"]
        started = time.monotonic()
        code = run_child(b, 1024)
        assert code == -signal.SIGKILL
        assert b.oom_killed()
        assert classify_kill(b, -code) == "memory_budget"
        assert time.monotonic() - started < 10
    with Budget.create(64 * MIB, "wd-under", method="watchdog") as b:
        assert run_child(b, 32) == 0
        assert not b.oom_killed()
        assert classify_kill(b, None) is None


def test_watchdog_counts_children_too() -> None:
    # A parent that stays small while its child allocates: the sum is what counts.
    parent = (
        "import subprocess, sys; "
        f"sys.exit(subprocess.call([sys.executable, '-c', {CHILD!r}, '512']))"
    )
    with Budget.create(128 * MIB, "tree", method="watchdog") as b:
        proc = subprocess.Popen(b.wrap([sys.executable, "-c", parent]), start_new_session=True)
        b.started(proc.pid)
        code = proc.wait(timeout=60)
        b.stop()
        assert b.oom_killed()
        assert code == -signal.SIGKILL


def test_watchdog_attach_and_process_tree() -> None:
    assert os.getpid() in watchdog.process_tree(os.getpid())
    assert watchdog.rss_bytes(os.getpid()) > 0
    assert watchdog.rss_bytes(2**22 + 12345) == 0
    with Budget.create(64 * MIB, "wd-attach", method="watchdog") as b:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, "512"])
        attach(b, proc.pid)
        assert proc.wait(timeout=60) == -signal.SIGKILL
        b.stop()
        assert classify_kill(b, signal.SIGKILL) == "memory_budget"


# --- the order of fallbacks, where this machine cannot show them -----------------------------


def test_fallback_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cgroups, "current", dict)
    monkeypatch.setattr(budget, "systemd_run_available", lambda: True)
    with Budget.create(MIB, "order") as b:
        assert b.method == "systemd-run"
        assert b.unit is not None
        assert b.unit.endswith(".scope")
    # A fork-server child cannot be wrapped: systemd-run is skipped.
    with Budget.create(MIB, "order", can_wrap=False) as b:
        assert b.method == "watchdog"
    monkeypatch.setattr(budget, "systemd_run_available", lambda: False)
    with Budget.create(MIB, "order") as b:
        assert b.method == "watchdog"
    with pytest.raises(BudgetError, match="no cgroup v1 memory hierarchy"):
        Budget.create(MIB, method="cgroup-v1")


def test_v2_needs_the_controller_enabled_below_the_own_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fake v2 group: without 'memory' in subtree_control it is passed over untouched.
    (tmp_path / "cgroup.subtree_control").write_text("cpu io\n")
    monkeypatch.setattr(cgroups, "current", lambda: {2: tmp_path})
    monkeypatch.setattr(budget, "systemd_run_available", lambda: False)
    with Budget.create(MIB, "v2") as b:
        assert b.method == "watchdog"
    assert list(tmp_path.iterdir()) == [tmp_path / "cgroup.subtree_control"]
    assert (tmp_path / "cgroup.subtree_control").read_text() == "cpu io\n"


@pytest.mark.skipif(shutil.which("fincore") is None, reason="util-linux's fincore is missing")
def test_a_capped_run_starts_with_the_weights_out_of_the_page_cache(tmp_path: Path) -> None:
    # Pages another process read stay charged to its cgroup: a capped run mapping them
    # would never feel its cap (gpt2-1.5b "fit" 2 GiB with 5.9 GiB of file pages resident).
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(os.urandom(8 * 1024 * 1024))
    (tmp_path / "config.json").write_text("{}")
    weights.read_bytes()

    def resident() -> int:
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", str(weights)],
                             capture_output=True, text=True, check=True).stdout  # fmt: skip
        return int(out.split()[0])

    assert resident() > 0
    assert budget.evict_page_cache(tmp_path) == 8 * 1024 * 1024
    assert resident() == 0
    assert budget.evict_page_cache(tmp_path / "nothing") == 0
