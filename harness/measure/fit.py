"""Fit search: the smallest memory cap under which `run_once(cap_bytes)` still succeeds (assumed
monotonic in the cap), bisected geometrically until within `rel_tol` of the largest failure.
`run_once` returns False only for a budget kill; any other failure should raise."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.metrics import MIB

if TYPE_CHECKING:
    from collections.abc import Callable


@dataclass(frozen=True)
class Trial:
    cap_bytes: int
    ok: bool


@dataclass(frozen=True)
class FitResult:
    """status: 'fit' (bracketed to rel_tol), 'fits_at_lo' (needs lo or less: lower lo),
    'fails_at_hi' (needs more than hi: raise hi)."""

    status: str
    cap_bytes: int | None  # the smallest cap that succeeded; None when even hi failed
    below_bytes: int | None  # the largest cap that failed; None when lo succeeded
    rel_tol: float
    trials: tuple[Trial, ...]

    @property
    def cap_mb(self) -> float | None:
        return None if self.cap_bytes is None else round(self.cap_bytes / MIB, 1)

    @property
    def below_mb(self) -> float | None:
        return None if self.below_bytes is None else round(self.below_bytes / MIB, 1)

    def to_record(self) -> dict[str, object]:
        """The fields a record or report carries for this search."""
        return {
            "fit_status": self.status,
            "fit_mb": self.cap_mb,
            "fit_below_mb": self.below_mb,
            "fit_rel_tol": self.rel_tol,
            "fit_trials": [
                {"cap_mb": round(p.cap_bytes / MIB, 1), "ok": p.ok} for p in self.trials
            ],
        }


def fit(run_once: Callable[[int], bool], lo: int, hi: int, rel_tol: float = 0.05) -> FitResult:
    """Bisect the smallest cap in [lo, hi] (bytes) for which run_once(cap) is True."""
    if not 0 < lo < hi:
        raise ValueError(f"need 0 < lo < hi, got lo={lo} hi={hi}")
    if not 0 < rel_tol < 1:
        raise ValueError(f"rel_tol must be in (0, 1), got {rel_tol}")
    trials: list[Trial] = []

    def attempt(cap: int) -> bool:
        ok = bool(run_once(cap))
        trials.append(Trial(cap, ok))
        return ok

    if not attempt(hi):
        return FitResult("fails_at_hi", None, hi, rel_tol, tuple(trials))
    if attempt(lo):
        return FitResult("fits_at_lo", lo, None, rel_tol, tuple(trials))
    good, bad = hi, lo
    while good > bad * (1 + rel_tol):
        mid = round(math.sqrt(good * bad))  # geometric: caps span orders of magnitude
        if not bad < mid < good:  # a gap of a byte or two: nothing left to split
            break
        if attempt(mid):
            good = mid
        else:
            bad = mid
    return FitResult("fit", good, bad, rel_tol, tuple(trials))
