"""The vocabulary every part of the harness shares: units, statuses, golden verdicts, metrics.

One registry, no copies: tables, compare, the bisect probe, `fail_on` choices and status
ranks all derive from what is defined here. A leaf module: it imports nothing of the harness,
so config, records, decide and report can all use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Mapping

MIB = 1024 * 1024

Status = Literal["ok", "unsupported", "install_error", "error", "timeout", "killed"]
# Best to worst: a higher rank on the candidate side of a comparison is worse.
STATUSES: tuple[Status, ...] = ("ok", "unsupported", "install_error", "error", "timeout", "killed")
# Keyed by str: statuses come back from JSON as plain strings.
STATUS_RANK: Mapping[str, int] = MappingProxyType({s: i for i, s in enumerate(STATUSES)})
# Statuses that do not fail a run: it worked, or the library itself refused the combination.
GOOD_STATUSES: frozenset[str] = frozenset({"ok", "unsupported"})

# tokenizer: the stack's tokenizer made other input ids of the prompt than the golden's.
GoldenVerdict = Literal["match", "drift", "missing", "stale", "tokenizer", "mismatch"]
# Best to worst; the failing ones fail a run (drift only under --strict-golden).
GOLDEN_VERDICTS: tuple[GoldenVerdict, ...] = (
    "match", "drift", "missing", "stale", "tokenizer", "mismatch"
)  # fmt: skip
GOLDEN_RANK: Mapping[str, int] = MappingProxyType({v: i for i, v in enumerate(GOLDEN_VERDICTS)})
GOLDEN_FAILING: frozenset[str] = frozenset({"mismatch", "stale", "tokenizer"})

Category = Literal["memory", "time", "status", "golden"]
CATEGORIES: tuple[Category, ...] = ("memory", "time", "status", "golden")


@dataclass(frozen=True)
class Metric:
    """One numeric field of a record, and how it is judged and shown."""

    name: str
    label: str  # as a sentence says it
    unit: Literal["MiB", "s", "tokens/s", "x"]
    category: Category  # which threshold applies; what `fail_on` may name
    higher_is_better: bool = False
    digits: int = 1  # shown with this many decimals
    summarized: bool = True  # a column of the per-cell summary
    column: str = ""  # its header in the markdown results table; "" = not shown there
    file_backed: bool = False  # counts file pages: not judged for models under the floor
    # Measured once per fork-server and copied into each of its runs: one value, not n.
    per_worker: bool = False

    @property
    def better(self) -> str:
        return "higher" if self.higher_is_better else "lower"


_MEM: Category = "memory"
_TIME: Category = "time"
# Every metric is compared. `file_backed`: it counts file pages (library code, mmapped
# weights), which for a tiny model are mostly torch's own code and change with its build.
REGISTRY: tuple[Metric, ...] = (
    Metric("load_s", "load time", "s", _TIME, digits=3, column="load s"),
    Metric("ttft_s", "time to first token", "s", _TIME, digits=3, column="ttft s"),
    Metric("tokens_per_s", "decode rate", "tokens/s", _TIME, higher_is_better=True, column="tok/s"),
    Metric("warm_tokens_per_s", "warm decode rate", "tokens/s", _TIME, higher_is_better=True),
    Metric("load_cpu_s", "load CPU time", "s", _TIME, digits=3),
    Metric("ttft_cpu_s", "first-token CPU time", "s", _TIME, digits=3),
    Metric("generate_cpu_s", "generate CPU time", "s", _TIME, digits=3),
    Metric("import_s", "import time", "s", _TIME, digits=3, summarized=False, per_worker=True),
    Metric("peak_mb", "peak memory", "MiB", _MEM, column="peak MiB", file_backed=True),
    Metric("anon_mb", "anonymous memory", "MiB", _MEM, column="anon MiB"),
    Metric("file_mb", "file-backed memory", "MiB", _MEM, column="file MiB", file_backed=True),
    Metric(
        "anon_peak_mb", "anonymous peak (sampled: a lower bound)", "MiB", _MEM, summarized=False
    ),
    Metric("load_peak_mb", "peak memory while loading", "MiB", _MEM, file_backed=True),
    Metric("load_anon_mb", "anonymous after loading", "MiB", _MEM, summarized=False),
    Metric(
        "load_file_mb", "file-backed after loading", "MiB", _MEM, summarized=False, file_backed=True
    ),
    Metric(
        "peak_ratio",
        "peak over the weights",
        "x",
        _MEM,
        digits=2,
        column="peak/weights",
        file_backed=True,
    ),
    Metric("cuda_peak_mb", "CUDA allocated peak", "MiB", _MEM, summarized=False),
    Metric("cuda_reserved_peak_mb", "CUDA reserved peak", "MiB", _MEM, summarized=False),
)
METRICS: Mapping[str, Metric] = MappingProxyType({m.name: m for m in REGISTRY})
NUMERIC: tuple[str, ...] = tuple(m.name for m in REGISTRY)
# Memory first, then time: the order compare's rows and `fail_on` choices are listed in.
COMPARED: tuple[Metric, ...] = tuple(sorted(REGISTRY, key=lambda m: CATEGORIES.index(m.category)))
SUMMARIZED: tuple[Metric, ...] = tuple(m for m in REGISTRY if m.summarized)
# The columns of the markdown results table, in registry order.
SHOWN: tuple[Metric, ...] = tuple(m for m in SUMMARIZED if m.column)
# What `fail_on` may name: a category, or one compared metric.
FAIL_ON_CHOICES: tuple[str, ...] = (*CATEGORIES, *(m.name for m in COMPARED))
