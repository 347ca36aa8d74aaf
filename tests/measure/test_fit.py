"""Fit search: the bisection logic with a fake run, and one real fit under a real cap."""

from __future__ import annotations

import math
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from harness.measure import budget, fit
from harness.metrics import MIB

if TYPE_CHECKING:
    from collections.abc import Callable


def fake(need: int, calls: list[int] | None = None) -> Callable[[int], bool]:
    def run_once(cap: int) -> bool:
        if calls is not None:
            calls.append(cap)
        return cap >= need

    return run_once


def trials_needed(lo: int, hi: int, rel_tol: float) -> int:
    """The most runs a geometric bisection of [lo, hi] down to rel_tol may take."""
    ratio = math.log(hi / lo) / math.log1p(rel_tol)
    return 2 + max(0, math.ceil(math.log2(ratio)))


@pytest.mark.parametrize("need_mib", [33, 64, 100, 199.5, 200, 512, 1000, 1023])
@pytest.mark.parametrize("rel_tol", [0.05, 0.01, 0.2])
def test_bracket_is_within_tolerance(need_mib: float, rel_tol: float) -> None:
    need = int(need_mib * MIB)
    lo, hi = 32 * MIB, 1024 * MIB
    result = fit.fit(fake(need), lo, hi, rel_tol)
    assert result.status == "fit"
    assert result.cap_bytes is not None
    assert result.below_bytes is not None
    assert result.below_bytes < need <= result.cap_bytes
    assert result.cap_bytes <= result.below_bytes * (1 + rel_tol)
    assert result.cap_bytes <= need * (1 + rel_tol)
    assert len(result.trials) <= trials_needed(lo, hi, rel_tol)


def test_probes_are_recorded_in_order() -> None:
    calls: list[int] = []
    result = fit.fit(fake(200 * MIB, calls), 32 * MIB, 1024 * MIB)
    assert [p.cap_bytes for p in result.trials] == calls
    assert calls[:2] == [1024 * MIB, 32 * MIB]
    assert all(p.ok == (p.cap_bytes >= 200 * MIB) for p in result.trials)
    assert len(set(calls)) == len(calls), "no cap is probed twice"
    record = result.to_record()
    assert record["fit_status"] == "fit"
    assert record["fit_mb"] == result.cap_mb
    assert len(record["fit_trials"]) == len(calls)  # type: ignore[arg-type]


def test_fails_even_at_hi() -> None:
    result = fit.fit(fake(2048 * MIB), 32 * MIB, 1024 * MIB)
    assert result.status == "fails_at_hi"
    assert result.cap_bytes is None
    assert result.cap_mb is None
    assert result.below_bytes == 1024 * MIB
    assert result.trials == (fit.Trial(1024 * MIB, ok=False),)


def test_succeeds_at_lo() -> None:
    result = fit.fit(fake(1), 32 * MIB, 1024 * MIB)
    assert result.status == "fits_at_lo"
    assert result.cap_bytes == 32 * MIB
    assert result.below_bytes is None
    assert [p.ok for p in result.trials] == [True, True]


def test_narrow_range_needs_no_bisection() -> None:
    result = fit.fit(fake(101), 100, 104)
    assert result.status == "fit"
    assert (result.below_bytes, result.cap_bytes) == (100, 104)
    assert len(result.trials) == 2


def test_tiny_integer_gap_terminates() -> None:
    result = fit.fit(fake(2), 1, 3, rel_tol=0.01)
    assert (result.below_bytes, result.cap_bytes) == (1, 2)


def test_a_raising_run_ends_the_search() -> None:
    def broken(cap: int) -> bool:
        raise RuntimeError(f"model error at {cap}")

    with pytest.raises(RuntimeError, match="model error"):
        fit.fit(broken, 1, 100)


@pytest.mark.parametrize(
    ("lo", "hi", "tol"), [(0, 10, 0.05), (10, 10, 0.05), (20, 10, 0.05), (1, 10, 0), (1, 10, 1)]
)
def test_bad_arguments(lo: int, hi: int, tol: float) -> None:
    with pytest.raises(ValueError, match=r"lo|rel_tol"):
        fit.fit(fake(5), lo, hi, tol)


# --- one real fit ------------------------------------------------------------------------

NEED_MIB = 200
# Allocates NEED_MIB in 8 MiB steps, writing one byte per page so every page is resident,
# then holds it briefly (long enough for a watchdog poll to see the peak).
CHILD = r"""
import sys, time
held = []
for _ in range(int(sys.argv[1]) // 8):
    b = bytearray(8 << 20)
    b[::4096] = b"\x01" * len(range(0, len(b), 4096))
    held.append(b)
time.sleep(0.03)
"""


def run_child(cap: int) -> bool:
    """One real run under a real cap: True if it finished, False if the budget killed it."""
    with budget.Budget.create(cap, "fit-test") as b:
        proc = subprocess.Popen(b.wrap([sys.executable, "-c", CHILD, str(NEED_MIB)]))
        b.started(proc.pid)
        code = proc.wait(timeout=60)
        b.stop()
        if code == 0:
            return True
        assert budget.classify_kill(b, -code) == "memory_budget", f"exit {code}"
        return False


def test_real_fit_of_an_allocating_process() -> None:
    result = fit.fit(run_child, 32 * MIB, 1024 * MIB, rel_tol=0.05)
    assert result.status == "fit", result
    assert result.cap_bytes is not None
    assert result.below_bytes is not None
    # The child's 200 MiB are anonymous and there is no swap: no smaller cap can work.
    assert result.cap_bytes > NEED_MIB * MIB
    # Bracketed to the tolerance, and not far above the need (interpreter ~10-30 MiB).
    assert result.cap_bytes <= result.below_bytes * 1.05
    assert result.cap_bytes < (NEED_MIB + 64) * MIB
    # The cap that failed really failed, and monotonicity held on every probe.
    assert all(p.ok == (p.cap_bytes >= result.cap_bytes) for p in result.trials)
