"""Run records as tables: the tidy DataFrame (one row per record) and the per-cell summary.

Axis labels follow cell ids: low_cpu_mem_usage is omit, true or false and device_map none
when the keyword was left out. Records without a machine (install errors) take their run's.
"""

from __future__ import annotations

import json
import math
import re
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from packaging.version import InvalidVersion, Version

from harness import records as rec

if TYPE_CHECKING:
    from collections.abc import Sequence

TEXT_FIELDS = ("run_id", "stack_id", "python_version", "torch_version", "transformers_version",
               "accelerate_version", "machine_fingerprint", "model", "model_source", "cell_id",
               "scenario", "dtype", "checkpoint_format", "mode", "status", "message", "reason",
               "memory_method", "golden", "golden_detail", "traceback")  # fmt: skip
INT_FIELDS = ("repeat", "max_new_tokens", "params", "param_bytes")
FLOAT_FIELDS = ("import_s", "load_s", "ttft_s", "tokens_per_s", "load_peak_mb", "peak_mb",
                "anon_mb", "file_mb", "anon_peak_mb", "load_anon_mb", "load_file_mb",
                "peak_ratio", "cuda_peak_mb", "cuda_reserved_peak_mb", "wall_s")  # fmt: skip
PHASE_KEYS = ("seconds", "hwm_mb", "rss_mb", "anon_mb", "file_mb", "anon_peak_mb",
              "cuda_alloc_peak_mb", "cuda_reserved_peak_mb")  # fmt: skip
BASELINE_KEYS = ("hwm_mb", "rss_mb", "anon_mb", "file_mb")
# The metrics summarized over repeats, with the digits markdown shows them with.
METRICS = {"load_s": 3, "ttft_s": 3, "tokens_per_s": 1, "peak_mb": 1, "anon_mb": 1,
           "file_mb": 1, "load_peak_mb": 1, "peak_ratio": 2}  # fmt: skip
SHOWN = ("load_s", "ttft_s", "tokens_per_s", "peak_mb", "anon_mb", "file_mb", "peak_ratio")
GROUP = ["machine_fingerprint", "stack_id", "model", "scenario"]
STATUS_RANK = {s: i for i, s in enumerate(rec.STATUSES)}
# Golden verdicts best to worst, as harness.golden.store ranks them; the last two fail a run.
GOLDEN_ORDER = ("match", "drift", "missing", "stale", "mismatch")
GOLDEN_FAILING = frozenset({"stale", "mismatch"})


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _texts(values: list[object]) -> list[str | None]:
    # Nearly always str or None already; convert the rest (e.g. golden_detail's list).
    if all(v is None or type(v) is str for v in values):
        return values  # type: ignore[return-value]
    return [_text(v) for v in values]


def _axis(value: object, none: str) -> str:
    """low_cpu_mem_usage and device_map as the labels cell ids use: omit, true, false, none."""
    if value is None:
        return none
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _float(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return math.nan
    return float(value)


def _floats(values: list[object]) -> np.ndarray[Any, np.dtype[np.float64]]:
    # Records hold numbers or None (None becomes NaN); anything else takes the slow path.
    if all(v is None or type(v) is float or type(v) is int for v in values):
        return np.array(values, dtype=np.float64)
    return np.fromiter((_float(v) for v in values), dtype=np.float64)


def _machine_label(machine: object) -> str | None:
    if not isinstance(machine, dict) or not machine:
        return None
    mem = machine.get("mem_total_mb")
    gib = f", {mem / 1024:.1f} GiB" if isinstance(mem, (int, float)) else ""
    gpu = f", {machine['gpu']}" if machine.get("gpu") else ""
    return f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores{gib}{gpu}"


def to_frame(records: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """One row per record, flat columns only; unknown future fields are left out."""
    cols: dict[str, Any] = {f: _texts([r.get(f) for r in records]) for f in TEXT_FIELDS}
    cols["machine"] = [_machine_label(r.get("machine")) for r in records]
    cols["low_cpu_mem_usage"] = [_axis(r.get("low_cpu_mem_usage"), "omit") for r in records]
    cols["device_map"] = [_axis(r.get("device_map"), "none") for r in records]
    for f in INT_FIELDS:
        cols[f] = pd.array([r.get(f) for r in records], dtype="Int64")
    for f in FLOAT_FIELDS:
        cols[f] = _floats([r.get(f) for r in records])
    for phase in rec.MEMORY_PHASES:
        found = [(r.get("phases") or {}).get(phase) or {} for r in records]
        for key in PHASE_KEYS:
            cols[f"phase_{phase}_{key}"] = _floats([p.get(key) for p in found])
    baselines = [r.get("baseline") or {} for r in records]
    for key in BASELINE_KEYS:
        cols[f"baseline_{key}"] = _floats([b.get(key) for b in baselines])
    df = pd.DataFrame(cols)
    df["weights_mb"] = df["param_bytes"].astype("float64") / rec.MIB
    df["load_rss_mb"] = df["phase_load_rss_mb"] - df["baseline_rss_mb"]
    return _fill_fingerprints(df)


def _fill_fingerprints(df: pd.DataFrame) -> pd.DataFrame:
    """Records without an environment (install errors) ran on their run's one machine."""
    known = df.dropna(subset=["machine_fingerprint"]).groupby("run_id")["machine_fingerprint"]
    single = known.unique()
    fill = {run: str(fps[0]) for run, fps in single.items() if len(fps) == 1}
    missing = df["machine_fingerprint"].isna()
    df.loc[missing, "machine_fingerprint"] = df.loc[missing, "run_id"].map(fill)
    df["machine_fingerprint"] = df["machine_fingerprint"].fillna("unknown")
    return df


# ---------------------------------------------------------------- ordering and summary


# The default stack id, tf<transformers>-torch<torch>-py<python>: versions when records lack them.
_STACK_ID = re.compile(r"tf(?P<tf>[^-]+)-torch(?P<torch>[^-]+)")


def _version(text: object) -> Version | None:
    try:
        return Version(str(text))
    except InvalidVersion:
        return None


def _version_key(stack: str, known: dict[str, tuple[object, object]]) -> tuple[Any, ...]:
    parsed = tuple(_version(v) for v in known.get(stack, (None, None)) if isinstance(v, str))
    if len(parsed) < 2 or None in parsed:
        match = _STACK_ID.match(stack)
        parsed = (_version(match["tf"]), _version(match["torch"])) if match else (None,)
    if None in parsed:
        return (1, stack)  # unknown versions go last, by name
    return (0, parsed, stack)


def stack_order(df: pd.DataFrame) -> list[str]:
    """Stacks by transformers then torch version, so charts read oldest to newest."""
    first = df.groupby("stack_id")[["transformers_version", "torch_version"]].first()
    known = {
        str(s): (tf, torch)
        for s, tf, torch in zip(
            first.index, first["transformers_version"], first["torch_version"], strict=True
        )
    }
    return sorted((str(s) for s in df["stack_id"].unique()), key=lambda s: _version_key(s, known))


def model_order(df: pd.DataFrame) -> list[str]:
    params = df.groupby("model")["params"].max()
    return sorted(params.index, key=lambda m: (pd.isna(params[m]), params[m] or 0, m))


def scenario_order(df: pd.DataFrame) -> list[str]:
    return [str(s) for s in df["scenario"].unique()]  # run order follows matrix.yaml


def _status_texts(df: pd.DataFrame) -> pd.Series[str]:
    """Per group "ok" when all repeats agree, else e.g. "ok 2, error 1" (best first)."""
    counts = df.groupby([*GROUP, "status"], sort=False).size()
    texts: dict[tuple[Any, ...], list[tuple[int, str, int]]] = {}
    for index, n in zip(counts.index.tolist(), counts.tolist(), strict=True):
        *key, status = index
        rank = STATUS_RANK.get(status, len(STATUS_RANK))
        texts.setdefault(tuple(key), []).append((rank, status, n))
    out = {
        key: parts[0][1] if len(parts) == 1 else ", ".join(f"{s} {n}" for _, s, n in sorted(parts))
        for key, parts in texts.items()
    }
    return pd.Series(out, dtype="str")


def _worst(df: pd.DataFrame, column: str, order: Sequence[str]) -> pd.Series[Any]:
    """Per group, the value latest in `order` (the worst); missing where none is known."""
    rank = df[column].map({v: i for i, v in enumerate(order)})
    worst = rank.groupby([df[c] for c in GROUP], sort=False).max()
    return worst.map(dict(enumerate(order)))


def summarize(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (machine, stack, model, scenario): counts, verdicts and metric spreads."""
    ok = df.loc[df["status"] == "ok"]
    grouped = df.groupby(GROUP, sort=False)
    constant = ["run_id", "transformers_version", "torch_version", "params", "cell_id",
                "low_cpu_mem_usage", "device_map", "dtype", "checkpoint_format"]  # fmt: skip
    first = grouped[constant].first()
    out = first.rename(columns={"run_id": "first_run"})
    out["runs"] = grouped["run_id"].nunique()
    out["n"] = grouped.size()
    out["n_ok"] = ok.groupby(GROUP, sort=False).size().reindex(out.index).fillna(0).astype(int)
    out["status"] = _worst(df, "status", rec.STATUSES).reindex(out.index)
    out["statuses"] = _status_texts(df).reindex(out.index)
    out["golden"] = _worst(df, "golden", GOLDEN_ORDER).reindex(out.index)
    bad = df.loc[df["status"] != "ok"]
    out["message"] = bad.groupby(GROUP, sort=False)["message"].first().reindex(out.index)
    ok_groups = ok.groupby(GROUP, sort=False)[list(METRICS)]
    stats = {"median": ok_groups.median(), "min": ok_groups.min(), "max": ok_groups.max()}
    stats["q1"] = ok_groups.quantile(0.25)
    stats["q3"] = ok_groups.quantile(0.75)
    for metric in METRICS:
        for stat, frame in stats.items():
            out[f"{metric}_{stat}"] = frame[metric].reindex(out.index)
    out = out.reset_index()
    rank = {
        "stack_id": {s: i for i, s in enumerate(stack_order(df))},
        "model": {m: i for i, m in enumerate(model_order(df))},
        "scenario": {s: i for i, s in enumerate(scenario_order(df))},
    }
    keys = ["machine_fingerprint", "stack_id", "model", "scenario"]
    out = out.sort_values(
        keys, key=lambda col: col.map(rank[str(col.name)]) if col.name in rank else col
    )
    return out.reset_index(drop=True)


def golden_note(detail: object) -> str:
    """golden_detail (JSON text of per-prompt verdicts) as one short readable line."""
    if not isinstance(detail, str) or not detail:
        return ""
    try:
        items = json.loads(detail)
    except ValueError:
        return detail
    if not isinstance(items, list):
        return detail
    notes = []
    for item in items:
        if not isinstance(item, dict) or item.get("verdict") == "match":
            continue
        note = f"{item.get('prompt', '?')!r}: {item.get('verdict')}"
        if item.get("position") is not None:
            note += f" at token {item['position']}"
        if item.get("expected_text") is not None:
            note += f" (expected {item['expected_text']!r}, got {item.get('actual_text')!r})"
        if item.get("error"):
            note += f" ({item['error']})"
        notes.append(note)
    return "; ".join(notes)


def failures(df: pd.DataFrame) -> pd.DataFrame:
    """Records that fail a run (a bad status or a failing golden verdict), by stack order."""
    bad = df.loc[~df["status"].isin(rec.GOOD_STATUSES) | df["golden"].isin(GOLDEN_FAILING)]
    rank = {s: i for i, s in enumerate(stack_order(df))}
    return bad.sort_values("stack_id", key=lambda col: col.map(rank), kind="stable")


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def per_machine(df: pd.DataFrame, stacks: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """With records of several machines, "stack @ machine" stands for a stack in every chart.

    Charts group by stack_id; relabelling keeps machines apart instead of pooling them.
    """
    fingerprints = sorted(str(f) for f in df["machine_fingerprint"].unique())
    if len(fingerprints) < 2:
        return df, list(stacks)
    labels = df["stack_id"] + " @ " + df["machine_fingerprint"]
    present = set(labels)
    order = [f"{s} @ {f}" for s in stacks for f in fingerprints if f"{s} @ {f}" in present]
    return df.assign(stack_id=labels), order
