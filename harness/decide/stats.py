"""Two sets of repeats, one number each: the relative change of medians, its interval, a verdict.

An exact permutation test of Mann-Whitney U and the Hodges-Lehmann interval at the rank the exact
U distribution gives, built for 3 to 10 repeats (README: "Statistics for the 3 to 10 repeats").
"""

from __future__ import annotations

import functools
import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np
from scipy import stats as sps

if TYPE_CHECKING:
    from collections.abc import Sequence

    from numpy.typing import NDArray

# Above this many splits the permutation distribution is sampled, seeded: still reproducible.
EXACT_SPLITS = 100_000
RESAMPLES = 20_000
SEED = 20261204
# The verdict on one metric: the one definition compare, walk and render use.
Verdict = Literal["better", "worse", "same", "uncertain"]
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
# The verdicts that say something changed.
CHANGES: tuple[Verdict, ...] = ("better", "worse")


@dataclass(frozen=True)
class Estimate:
    """Medians, the relative change and its (1 - alpha) interval (None: too few repeats)."""

    base: float
    candidate: float
    change: float
    low: float | None
    high: float | None
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
    """The smallest two-sided p-value an exact rank test can give for n vs m."""
    return min(1.0, 2 / math.comb(n + m, n))


def repeats_needed(alpha: float) -> int:
    """The fewest repeats per side for which an exact test can reach `alpha`."""
    return next(n for n in range(1, 50) if smallest_p(n, n) <= alpha)


def _u(x: NDArray[np.float64], y: NDArray[np.float64], axis: int) -> NDArray[np.float64]:
    """Mann-Whitney U of y over x: pairs with y above x, ties counting one half."""
    xs, ys = np.moveaxis(x, axis, -1)[..., :, None], np.moveaxis(y, axis, -1)[..., None, :]
    u: NDArray[np.float64] = (ys > xs).sum(axis=(-1, -2)) + 0.5 * (ys == xs).sum(axis=(-1, -2))
    return u


def _permutation(x: Sequence[float], y: Sequence[float]) -> sps._resampling.PermutationTestResult:
    exact = math.comb(len(x) + len(y), len(x)) <= EXACT_SPLITS
    return sps.permutation_test(
        (np.asarray(x, dtype=float), np.asarray(y, dtype=float)), _u,
        permutation_type="independent", vectorized=True, alternative="two-sided",
        n_resamples=np.inf if exact else RESAMPLES, rng=np.random.default_rng(SEED),
    )  # fmt: skip


@functools.cache
def _rank(n: int, m: int, alpha: float) -> int:
    """k: the interval is the k-th smallest to k-th largest pairwise difference, the largest
    k whose tail P(U <= k - 1) stays within alpha / 2 (0: no interval at that confidence)."""
    null = _permutation(range(n), range(n, n + m)).null_distribution
    return max((k for k in range(n * m // 2 + 1) if np.mean(null <= k - 1) <= alpha / 2), default=0)


def estimate(
    base: Sequence[float], candidate: Sequence[float], *, alpha: float, floor: float = 0.0
) -> Estimate:
    if not base or not candidate:
        raise ValueError("both sides need at least one value")
    change = relative_change(base, candidate, floor)
    low: float | None = None
    high: float | None = None
    p_value: float | None = None
    if len(set(base) | set(candidate)) == 1:
        low = high = change
        p_value = 1.0
    elif min(len(base), len(candidate)) >= 2:
        p_value = float(_permutation(base, candidate).pvalue)
        k = _rank(len(base), len(candidate), alpha)
        if k:
            scale = max(abs(statistics.median(base)), floor, 1e-12)
            diffs = np.sort(np.subtract.outer(candidate, base).ravel()) / scale
            low, high = float(min(diffs[k - 1], change)), float(max(diffs[-k], change))
            if min(*base, *candidate) >= 0:
                # Times and sizes cannot fall by more than all of it; a slow outlier in the
                # base made pairwise differences say so. Clipping moves no verdict: past
                # -100% is past every threshold already.
                low, high = max(low, -1.0), max(high, -1.0)
    medians = (statistics.median(base), statistics.median(candidate))
    return Estimate(*medians, change, low, high, p_value, len(base), len(candidate))


def judge(  # noqa: PLR0911 - one return per reason a verdict gives
    est: Estimate,
    *,
    threshold: float,
    higher_is_better: bool,
    alpha: float,
    min_repeats: int,
    floor: float = 0.0,
) -> Judgement:
    """better / worse / same / uncertain for one metric, with the reason in words."""
    n, m = est.n_base, est.n_candidate
    if min(n, m) < min_repeats:
        return Judgement("uncertain", f"too few repeats ({n} vs {m}; need {min_repeats} each)")
    if floor and abs(est.candidate - est.base) < floor:
        return Judgement("same", f"moves by less than {floor:.3g} in absolute terms")
    if est.low is None or est.high is None:
        return Judgement(
            "uncertain",
            f"{n} vs {m} repeats cannot reach {1 - alpha:.0%} confidence (smallest exact p "
            f"{smallest_p(n, m):.3g}); run {repeats_needed(alpha)} or more per side",
        )
    # "harm" > 0 means the candidate is worse, whichever way the metric points.
    sign = -1.0 if higher_is_better else 1.0
    low, high = sorted((sign * est.low, sign * est.high))
    interval = f"{1 - alpha:.0%} CI {est.low:+.1%} .. {est.high:+.1%}"
    if -threshold <= low and high <= threshold:
        return Judgement("same", f"{interval} lies within +-{threshold:.0%}")
    if low <= threshold and high >= -threshold:
        return Judgement("uncertain", f"{interval} crosses the +-{threshold:.0%} threshold")
    # Ties can widen what the ranks allow: the exact test must reach alpha as well.
    if est.p_value is not None and est.p_value > alpha:
        return Judgement(
            "uncertain", f"{interval}, but the exact rank test gives p={est.p_value:.3g}"
        )
    verdict: Verdict = "worse" if low > threshold else "better"
    p = f", exact p={est.p_value:.3g}" if est.p_value is not None else ""
    return Judgement(verdict, f"{interval} beyond +-{threshold:.0%}{p}")
