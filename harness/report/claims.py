"""Loading claims users have read, with the verdict this run's records give, per version: only
the claims and the method are written in advance; every verdict and number comes from the frame."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import pandas as pd

from harness.config import ids

if TYPE_CHECKING:
    from collections.abc import Callable

HOLDS = "holds"
PARTLY = "partly holds"
FAILS = "does not hold"
NO_EVIDENCE = "no evidence in this run"
# Below this the runtime's own overhead (allocator, imports) swamps the weights.
MIN_WEIGHTS_MB = 64.0
# "Halves" within measurement noise; under 10 % apart counts as "the same".
HALF_AT_MOST = 0.6
SAME_WITHIN = 0.1
# RSS "shows the model" when it is within 25 % of the weights.
CLOSE_LOW, CLOSE_HIGH = 0.8, 1.25
# int8 "cuts memory to a quarter": the peak at most this share of the float one.
QUARTER_AT_MOST = 0.35
NO_BIG_RUN = f"no ok run of a model with {MIN_WEIGHTS_MB:.0f} MiB of weights or more"
PAIR = ["machine_fingerprint", "stack_id", "model", "device_map", "dtype", "checkpoint_format"]


@dataclass(frozen=True)
class Finding:
    version: str
    verdict: str
    evidence: str


@dataclass(frozen=True)
class Claim:
    key: str
    statement: str
    method: str
    check: Callable[[pd.DataFrame], tuple[str, str]] = field(repr=False)
    findings: tuple[Finding, ...] = ()
    # The versions the statement names, e.g. "5.5" for "the default in 5.5"; None: any.
    about: str | None = None

    def headline(self) -> str:
        """The verdict for the versions the claim names, or for all of them."""
        rows = [f for f in self.findings if self.about is None or _is(f.version, self.about)]
        if not rows:
            return f"{NO_EVIDENCE} (no transformers {self.about} stack)"
        verdicts = {f.verdict for f in rows if f.verdict != NO_EVIDENCE}
        if not verdicts:
            return NO_EVIDENCE
        return verdicts.pop() if len(verdicts) == 1 else "depends on the version"


def _is(version: str, prefix: str) -> bool:
    return version == prefix or version.startswith(prefix + ".")


def _big_ok(df: pd.DataFrame) -> pd.DataFrame:
    ok = df.loc[(df["status"] == "ok") & (df["weights_mb"] >= MIN_WEIGHTS_MB)]
    return ok.dropna(subset=["peak_mb"])


def _arms(rows: pd.DataFrame) -> pd.DataFrame:
    """Median peak per pairing key (columns: the low_cpu_mem_usage arms present)."""
    return rows.pivot_table(
        index=PAIR, columns="low_cpu_mem_usage", values="peak_mb", aggfunc="median"
    )


def _range(values: pd.Series[float], fmt: str = ".2f") -> str:
    lo, hi = values.min(), values.max()
    return f"{lo:{fmt}}" if f"{lo:{fmt}}" == f"{hi:{fmt}}" else f"{lo:{fmt}} to {hi:{fmt}}"


def _share(good: pd.Series[bool]) -> str:
    """Holds where every scenario passes, does not where none does, else partly."""
    return HOLDS if good.all() else FAILS if not good.any() else PARTLY


def halves(rows: pd.DataFrame) -> tuple[str, str]:
    big = _big_ok(rows)
    if big.empty:
        return NO_EVIDENCE, NO_BIG_RUN
    arms = _arms(big)
    if not {"true", "false"} <= set(arms.columns):
        return NO_EVIDENCE, "no ok run with both low_cpu_mem_usage=true and =false to compare"
    both = arms.dropna(subset=["true", "false"])
    if both.empty:
        return NO_EVIDENCE, "true and false never ran ok on the same model and scenario"
    ratio = both["true"] / both["false"]
    med = float(ratio.median())
    models = ", ".join(sorted({str(m) for m in both.index.get_level_values("model")}))
    evidence = (
        f"peak with true / peak with false = {med:.2f} (median of {len(ratio)} pairs, "
        f"range {_range(ratio)}; {models})"
    )
    if med <= HALF_AT_MOST:
        return HOLDS, evidence
    if med <= 1 - SAME_WITHIN:
        return PARTLY, f"lowers the peak by {1 - med:.0%}, not by half: {evidence}"
    return FAILS, evidence


def default_true(rows: pd.DataFrame) -> tuple[str, str]:
    big = _big_ok(rows)
    arms = _arms(big) if not big.empty else pd.DataFrame()
    if not {"true", "false", "omit"} <= set(arms.columns):
        return NO_EVIDENCE, "omit, true and false did not all run ok on a model this size"
    full = arms.dropna(subset=["true", "false", "omit"])
    gap = (full["true"] - full["false"]).abs() / full[["true", "false"]].max(axis=1)
    telling = full.loc[gap >= SAME_WITHIN]
    if telling.empty:
        return NO_EVIDENCE, (
            f"true and false give the same peak (within {SAME_WITHIN:.0%}, {len(full)} pairs), "
            "so memory cannot tell which one omitting picks"
        )
    apart = telling[["true", "false"]].rsub(telling["omit"], axis=0).abs()
    like_true = apart["true"] < apart["false"]
    n, k = len(telling), int(like_true.sum())
    evidence = (
        f"omitting the keyword behaves like true in {k} of {n} pairs where true and false "
        f"differ (omit/true peak {_range(telling['omit'] / telling['true'])}, "
        f"omit/false {_range(telling['omit'] / telling['false'])})"
    )
    if k == n:
        return HOLDS, evidence
    return (FAILS if k == 0 else PARTLY), evidence


def rss_shows_model(rows: pd.DataFrame) -> tuple[str, str]:
    big = _big_ok(rows).dropna(subset=["load_rss_mb", "load_peak_mb", "weights_mb"])
    big = big.loc[big["load_rss_mb"] > 0]
    if big.empty:
        return NO_EVIDENCE, NO_BIG_RUN
    # Per scenario: RSS after load over the weights, and the load's peak over that RSS.
    ratios = pd.DataFrame({"scenario": big["scenario"],
                           "after": big["load_rss_mb"] / big["weights_mb"],
                           "hidden": big["load_peak_mb"] / big["load_rss_mb"]})  # fmt: skip
    per = ratios.groupby("scenario").median()
    good = per["after"].between(CLOSE_LOW, CLOSE_HIGH) & (per["hidden"] <= CLOSE_HIGH)
    low, hidden = str(per["after"].idxmin()), str(per["hidden"].idxmax())
    lowest, highest = float(per["after"].min()), float(per["hidden"].max())
    evidence = (
        f"true in {int(good.sum())} of {len(per)} scenarios ({len(big)} runs): RSS after load is "
        f"{_range(per['after'])}x the weights (lowest {low}: {lowest:.2f}x) and "
        f"the peak during load reaches {highest:.2f}x that RSS ({hidden})"
    )
    return _share(good), evidence


def device_map_needs_accelerate(rows: pd.DataFrame) -> tuple[str, str]:
    dm = rows.loc[(rows["device_map"] != "none") & (rows["status"] != "install_error")]
    if dm.empty:
        return NO_EVIDENCE, "no scenario with a device_map ran"
    without = dm.loc[dm["accelerate_version"].isna()]
    if without.empty:
        versions = ", ".join(sorted({str(v) for v in dm["accelerate_version"].unique()}))
        ok = int((dm["status"] == "ok").sum())
        return NO_EVIDENCE, (
            f"every run with a device_map had accelerate {versions} installed "
            f"({ok} of {len(dm)} ok); no stack without it"
        )
    blamed = without["message"].fillna("").str.contains("accelerate", case=False)
    loaded = int((without["status"] == "ok").sum())
    if loaded:
        return FAILS, f"{loaded} of {len(without)} runs with a device_map loaded without accelerate"
    if blamed.any():
        return HOLDS, (
            f"{int(blamed.sum())} of {len(without)} runs with a device_map and no accelerate "
            "failed naming accelerate"
        )
    return NO_EVIDENCE, "runs without accelerate failed for reasons that do not name it"


def shard_by_shard(rows: pd.DataFrame) -> tuple[str, str]:
    big = _big_ok(rows).dropna(subset=["load_peak_mb", "largest_shard_mb"])
    sharded = big.loc[big["shards"].fillna(1) > 1]
    # Only runs that read their weights into memory while loading say anything: an mmapped
    # checkpoint that no forward pass has read yet stays on disk.
    read = sharded.loc[sharded["load_peak_mb"] >= sharded["weights_mb"] / 2]
    if read.empty:
        why = "no ok run of a sharded checkpoint" if sharded.empty else "no sharded run read its weights while loading"  # fmt: skip  # noqa: E501
        return NO_EVIDENCE, why
    # Beyond the weights themselves, a loader that goes shard by shard holds one shard.
    extra = (read["load_peak_mb"] - read["weights_mb"]) / read["largest_shard_mb"]
    per = pd.DataFrame({"scenario": read["scenario"], "extra": extra}).groupby("scenario").median()
    good = per["extra"] <= CLOSE_HIGH
    evidence = (
        f"peak while loading = the weights + {_range(per['extra'])} x the largest shard "
        f"({int(good.sum())} of {len(per)} scenarios within {CLOSE_HIGH}x; shards of "
        f"{_range(read['largest_shard_mb'], '.0f')} MiB)"
    )
    return _share(good), evidence


def int8_quarter(rows: pd.DataFrame) -> tuple[str, str]:
    big = _big_ok(rows)
    if "quantization" not in big or not {"none", "int8"} <= set(big["quantization"].dropna()):
        return NO_EVIDENCE, "no ok run of the same model both with and without int8"
    arms = big.pivot_table(index=PAIR, columns="quantization", aggfunc="median",
                           values=["peak_mb", "bytes_per_param"]).dropna()  # fmt: skip
    if arms.empty:
        return NO_EVIDENCE, "int8 and float never ran ok on the same model and scenario"
    peak = arms[("peak_mb", "int8")] / arms[("peak_mb", "none")]
    stored = arms[("bytes_per_param", "int8")] / arms[("bytes_per_param", "none")]
    evidence = (f"int8 / float: stored bytes per parameter {_range(stored)}, peak RSS "
                f"{_range(peak)} ({len(peak)} pairs)")  # fmt: skip
    return _share(peak <= QUARTER_AT_MOST), evidence


# The claims as written in advance: no findings yet, and what computes them.
CHECKS = (
    Claim(
        "halves",
        "low_cpu_mem_usage=True halves peak RAM",
        "Peak RSS with true over peak RSS with false, on the same stack, model, device_map, "
        f"dtype and format; models with at least {MIN_WEIGHTS_MB:.0f} MiB of weights. At "
        f"most {HALF_AT_MOST} holds; within {SAME_WITHIN:.0%} of 1 does not.",
        check=halves,
    ),
    Claim(
        "default",
        "low_cpu_mem_usage=True is the default in transformers 5.5",
        f"Where true and false give peaks more than {SAME_WITHIN:.0%} apart, whether "
        "omitting the keyword lands nearer true or false.",
        about="5.5",
        check=default_true,
    ),
    Claim(
        "rss",
        "RSS after from_pretrained shows the model's memory",
        "Per scenario, the RSS growth from just before from_pretrained to just after it "
        "over the size of the parameters (within "
        f"{CLOSE_LOW} to {CLOSE_HIGH} shows the model), and the peak during loading over "
        f"that RSS (at most {CLOSE_HIGH}, else RSS hides the peak). Holds if every "
        "scenario passes both.",
        check=rss_shows_model,
    ),
    Claim(
        "accelerate",
        "device_map needs accelerate",
        "Runs with a device_map on stacks without accelerate: loading anyway refutes it, "
        "failing with a message naming accelerate supports it.",
        check=device_map_needs_accelerate,
    ),
    Claim(
        "shards",
        "Peak RAM while loading a sharded checkpoint tracks the largest shard",
        "Sharded checkpoints whose loading read the weights into memory: the peak during "
        "loading less the weights, over the largest shard. At most "
        f"{CLOSE_HIGH} (about one shard held beside the model) holds.",
        check=shard_by_shard,
    ),
    Claim(
        "int8",
        "Memory varies wildly by dtype: weight-only int8 takes a quarter of float32's",
        "Runs of the same model and scenario with quantization int8 and none: the bytes the "
        "weights are stored in, and the peak RSS, int8 over none. A peak at most "
        f"{QUARTER_AT_MOST} of the float one holds.",
        check=int8_quarter,
    ),
)


def evaluate(df: pd.DataFrame) -> tuple[Claim, ...]:
    versions = sorted({str(v) for v in df["transformers_version"].dropna()}, key=ids.version_key)
    return tuple(
        replace(claim, findings=tuple(
            Finding(v, *claim.check(df.loc[df["transformers_version"] == v])) for v in versions
        ))
        for claim in CHECKS
    )  # fmt: skip
