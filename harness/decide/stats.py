"""Two sets of repeats, one number each: the relative change of medians, its CI, a verdict.

The change is (median(candidate) - median(base)) / max(|median(base)|, floor); the floor keeps
sub-MiB allocator noise from reading as +200%. The CI is a seeded percentile bootstrap.
Mann-Whitney U is a second opinion only where the repeats let it reach alpha at all (3 vs 3
cannot: its smallest two-sided p is 0.1).
"""

from __future__ import annotations

import inspect
import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
from scipy import stats as sps

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

RESAMPLES = 4000
SEED = 20261127
# The verdict on one metric: the one definition compare, walk and render use.
Verdict = Literal["better", "worse", "same", "uncertain"]
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
# The verdicts that say something changed.
CHANGES: tuple[Verdict, ...] = ("better", "worse")
# scipy 1.15 renamed random_state to rng; pass whichever this scipy has.
_RNG_KEYWORD = "rng" if "rng" in inspect.signature(sps.bootstrap).parameters else "random_state"


@dataclass(frozen=True)
class Estimate:
    """Medians of both sides, the relative change and its (1 - alpha) interval."""

    base: float
    candidate: float
    change: float
    low: float
    high: float
    p_value: float | None
    n_base: int
    n_candidate: int


@dataclass(frozen=True)
class Judgement:
    verdict: Verdict
    reason: str


def relative_change(base: Sequence[float], candidate: Sequence[float], floor: float = 0.0) -> float:
    b, c = statistics.median(base), statistics.median(candidate)
    return (c - b) / max(abs(b), floor, 1e-12)


def smallest_p(n: int, m: int) -> float:
    """The smallest two-sided p-value an exact Mann-Whitney U test can give for n vs m."""
    return min(1.0, 2 / math.comb(n + m, n))


def _bootstrap(
    base: Sequence[float], candidate: Sequence[float], *, alpha: float, floor: float
) -> tuple[float, float]:
    def statistic(x: NDArray[np.float64], y: NDArray[np.float64], axis: int) -> NDArray[np.float64]:
        mx = np.median(x, axis=axis)
        change: NDArray[np.float64] = (np.median(y, axis=axis) - mx) / np.maximum(
            np.abs(mx), max(floor, 1e-12)
        )
        return change

    options: dict[str, np.random.Generator] = {_RNG_KEYWORD: np.random.default_rng(SEED)}
    samples = (np.asarray(base, dtype=float), np.asarray(candidate, dtype=float))
    result = sps.bootstrap(samples, statistic, n_resamples=RESAMPLES, vectorized=True,
                           paired=False, confidence_level=1 - alpha, method="percentile",
                           **options)  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def estimate(
    base: Sequence[float], candidate: Sequence[float], *, alpha: float, floor: float = 0.0
) -> Estimate:
    if not base or not candidate:
        raise ValueError("both sides need at least one value")
    change = relative_change(base, candidate, floor)
    low = high = change
    p_value: float | None = None
    constant = len(set(base) | set(candidate)) == 1
    if min(len(base), len(candidate)) >= 2 and not constant:
        low, high = _bootstrap(base, candidate, alpha=alpha, floor=floor)
        p_value = float(sps.mannwhitneyu(base, candidate, alternative="two-sided").pvalue)
    elif constant:
        p_value = 1.0
    medians = (statistics.median(base), statistics.median(candidate))
    return Estimate(*medians, change, min(low, change), max(high, change), p_value, len(base),
                    len(candidate))  # fmt: skip


def judge(
    est: Estimate,
    *,
    threshold: float,
    higher_is_better: bool,
    alpha: float,
    min_repeats: int,
    floor: float = 0.0,
) -> Judgement:
    """better / worse / same / uncertain for one metric, with the reason in words."""
    if min(est.n_base, est.n_candidate) < min_repeats:
        return Judgement(
            "uncertain",
            f"too few repeats ({est.n_base} vs {est.n_candidate}; need {min_repeats} each)",
        )
    if floor and abs(est.candidate - est.base) < floor:
        return Judgement("same", f"moves by less than {floor:g} in absolute terms")
    # "harm" > 0 means the candidate is worse, whichever way the metric points.
    sign = -1.0 if higher_is_better else 1.0
    low, high = sorted((sign * est.low, sign * est.high))
    interval = f"{1 - alpha:.0%} CI {est.low:+.1%} .. {est.high:+.1%}"
    if -threshold <= low and high <= threshold:
        return Judgement("same", f"{interval} lies within +-{threshold:.0%}")
    if low <= threshold and high >= -threshold:
        return Judgement("uncertain", f"{interval} crosses the +-{threshold:.0%} threshold")
    verdict: Verdict = "worse" if low > threshold else "better"
    # Where the rank test could reach alpha at all, it must agree.
    n, m = est.n_base, est.n_candidate
    if est.p_value is not None and smallest_p(n, m) <= alpha and est.p_value > alpha:
        return Judgement("uncertain", f"{interval}, but Mann-Whitney p={est.p_value:.3g}")
    return Judgement(verdict, f"{interval} beyond +-{threshold:.0%}")
