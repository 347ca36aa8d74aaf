"""Run records as tables: the tidy frame (one row per record; axes labelled as cell ids label them,
records without a machine take their run's) and the per-cell summary."""

from __future__ import annotations

import json
import math
import types
import typing
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from harness import metrics
from harness import records as rec
from harness.config import ids
from harness.golden.store import describe

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from harness.records import Record

from harness.target.contract import Phase


def _kind(annotation: object) -> str:
    """text, int, float or bool for a scalar field of `Record` (None aside); else nested."""
    args = typing.get_args(annotation)
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        rest = [a for a in args if a is not type(None)]
        return _kind(rest[0]) if len(rest) == 1 else "nested"
    if typing.get_origin(annotation) is Literal:
        return "text" if all(isinstance(a, str) for a in args) else "nested"
    names = {str: "text", int: "int", float: "float", bool: "bool"}
    return names.get(annotation, "nested") if isinstance(annotation, type) else "nested"


# The tidy frame's columns come from the record contract: every scalar field by its type.
_KINDS = {name: _kind(t) for name, t in typing.get_type_hints(rec.Record).items()}
# Shown as cell ids show them: low_cpu_mem_usage omit/true/false, device_map none.
AXES = {"low_cpu_mem_usage": "omit", "device_map": "none"}
TEXT_FIELDS = (*(f for f, k in _KINDS.items() if k == "text" and f not in AXES), "golden_detail")
INT_FIELDS = tuple(f for f, k in _KINDS.items() if k == "int")
FLOAT_FIELDS = tuple(f for f, k in _KINDS.items() if k == "float")
BOOL_FIELDS = tuple(f for f, k in _KINDS.items() if k == "bool" and f not in AXES)
# seconds, hwm_mb, rss_mb, anon_mb, file_mb, anon_peak_mb and the CUDA peaks (the import
# phase's baseline_rss_mb is not one of the memory phases').
PHASE_KEYS = tuple(k for k in typing.get_type_hints(Phase) if k != "baseline_rss_mb")
BASELINE_KEYS = ("hwm_mb", "rss_mb", "anon_mb", "file_mb")
GROUP = ["machine_fingerprint", "stack_id", "model", "scenario"]


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


def to_frame(records: Sequence[Record]) -> pd.DataFrame:
    """One row per record, flat columns only; unknown future fields are left out."""
    rows: Sequence[Mapping[str, Any]] = records  # values as JSON gave them
    cols: dict[str, Any] = {f: _texts([r.get(f) for r in rows]) for f in TEXT_FIELDS}
    cols["machine"] = [_machine_label(r.get("machine")) for r in records]
    for f, none in AXES.items():
        cols[f] = [_axis(r.get(f), none) for r in rows]
    for f in INT_FIELDS:
        cols[f] = pd.array([r.get(f) for r in rows], dtype="Int64")
    for f in FLOAT_FIELDS:
        cols[f] = _floats([r.get(f) for r in rows])
    for f in BOOL_FIELDS:
        cols[f] = pd.array([r.get(f) for r in rows], dtype="boolean")
    for phase in rec.MEMORY_PHASES:
        found: list[Mapping[str, object]] = [
            (r.get("phases") or {}).get(phase) or {} for r in records
        ]
        for key in PHASE_KEYS:
            cols[f"phase_{phase}_{key}"] = _floats([p.get(key) for p in found])
    baselines: list[Mapping[str, object]] = [r.get("baseline") or {} for r in records]
    for key in BASELINE_KEYS:
        cols[f"baseline_{key}"] = _floats([b.get(key) for b in baselines])
    df = pd.DataFrame(cols)
    df["weights_mb"] = df["param_bytes"].astype("float64") / metrics.MIB
    df["load_rss_mb"] = df["phase_load_rss_mb"] - df["baseline_rss_mb"]
    # Records without an environment (install errors) ran on their run's one machine.
    known = df.dropna(subset=["machine_fingerprint"]).groupby("run_id")["machine_fingerprint"]
    fill = {run: str(fps[0]) for run, fps in known.unique().items() if len(fps) == 1}
    missing = df["machine_fingerprint"].isna()
    df.loc[missing, "machine_fingerprint"] = df.loc[missing, "run_id"].map(fill)
    df["machine_fingerprint"] = df["machine_fingerprint"].fillna("unknown")
    return df


def stack_order(df: pd.DataFrame) -> list[str]:
    """Stacks by transformers then torch version, so charts read oldest to newest; stacks
    whose versions are unknown go last (harness.config.ids.stack_order_key)."""
    first = df.groupby("stack_id")[["transformers_version", "torch_version"]].first()
    known = {str(s): ((tf,), (torch,)) for s, tf, torch in first.itertuples()}
    return sorted(
        (str(s) for s in df["stack_id"].unique()),
        key=lambda s: ids.stack_order_key(s, *known.get(s, ((), ()))),
    )


def model_order(df: pd.DataFrame) -> list[str]:
    params = df.groupby("model")["params"].max()
    # Failed runs count no parameters: NA sorts last (pd.NA has no truth value).
    known = {m: (0, int(n)) if pd.notna(n) else (1, 0) for m, n in params.items()}
    return sorted(params.index, key=lambda m: (*known[m], m))


def scenario_order(df: pd.DataFrame) -> list[str]:
    return [str(s) for s in df["scenario"].unique()]  # run order follows matrix.yaml


def _status_texts(df: pd.DataFrame) -> pd.Series[str]:
    """Per group "ok" when all repeats agree, else e.g. "ok 2, error 1" (best first)."""
    counts = df.groupby([*GROUP, "status"], sort=False).size()
    texts: dict[tuple[Any, ...], list[tuple[int, str, int]]] = {}
    for index, n in zip(counts.index.tolist(), counts.tolist(), strict=True):
        *key, status = index
        rank = metrics.STATUS_RANK.get(status, len(metrics.STATUS_RANK))
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


STATS = ("median", "min", "max", "q1", "q3")


def spreads(
    df: pd.DataFrame, keys: Sequence[str], stats: Sequence[str] = STATS
) -> dict[str, pd.DataFrame]:
    """Per group of `keys`, each statistic of the summarized metrics over the ok records: the
    numbers of both `summarize` and the console summary (harness.report.console)."""
    ok = df.loc[df["status"] == "ok"]
    groups = ok.groupby(list(keys), sort=False)[[m.name for m in metrics.SUMMARIZED]]
    quartiles = {"q1": 0.25, "q3": 0.75}
    return {
        s: groups.quantile(quartiles[s]) if s in quartiles else getattr(groups, s)() for s in stats
    }


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
    out["status"] = _worst(df, "status", metrics.STATUSES).reindex(out.index)
    out["statuses"] = _status_texts(df).reindex(out.index)
    out["golden"] = _worst(df, "golden", metrics.GOLDEN_VERDICTS).reindex(out.index)
    bad = df.loc[df["status"] != "ok"]
    out["message"] = bad.groupby(GROUP, sort=False)["message"].first().reindex(out.index)
    for stat, frame in spreads(df, GROUP).items():
        for m in metrics.SUMMARIZED:
            out[f"{m.name}_{stat}"] = frame[m.name].reindex(out.index)
    out = out.reset_index()
    orders = {"stack_id": stack_order, "model": model_order, "scenario": scenario_order}
    rank = {col: {v: i for i, v in enumerate(order(df))} for col, order in orders.items()}
    out = out.sort_values(
        GROUP, key=lambda col: col.map(rank[str(col.name)]) if col.name in rank else col
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
        note = f"{item.get('prompt', '?')!r}: {describe(item)}"
        if item.get("expected_text") is not None:
            note += f" (expected {item['expected_text']!r}, got {item.get('actual_text')!r})"
        if item.get("error"):
            note += f" ({item['error']})"
        notes.append(note)
    return "; ".join(notes)


def failures(df: pd.DataFrame) -> pd.DataFrame:
    """Records that fail a run (a bad status or a failing golden verdict), by stack order."""
    bad = df.loc[
        ~df["status"].isin(metrics.GOOD_STATUSES) | df["golden"].isin(metrics.GOLDEN_FAILING)
    ]
    return sort_stacks(bad, stack_order(df))


def sort_stacks(
    rows: pd.DataFrame, order: Sequence[str], by: Sequence[str] = ("stack_id",)
) -> pd.DataFrame:
    """Rows sorted by `by`, the stack_id column in `order` (a stable sort)."""
    rank = {s: i for i, s in enumerate(order)}
    key = lambda col: col.map(rank) if col.name == "stack_id" else col  # noqa: E731
    return rows.sort_values(list(by), key=key, kind="stable")


def number(value: object, digits: int, missing: str = "-") -> str:
    """A number with `digits` decimals; `missing` for None, NaN or anything not a number."""
    if not isinstance(value, (int, float)) or math.isnan(value):
        return missing
    return f"{value:.{digits}f}"


def short(text: str, limit: int) -> str:
    """One line, cut to `limit` characters with an ellipsis."""
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1] + "\N{HORIZONTAL ELLIPSIS}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def per_machine(df: pd.DataFrame, stacks: Sequence[str]) -> tuple[pd.DataFrame, list[str]]:
    """With several machines, "stack @ machine" stands for a stack: charts group by stack_id,
    so relabelling keeps machines apart instead of pooling them."""
    fingerprints = sorted(str(f) for f in df["machine_fingerprint"].unique())
    if len(fingerprints) < 2:
        return df, list(stacks)
    labels = df["stack_id"] + " @ " + df["machine_fingerprint"]
    present = set(labels)
    order = [f"{s} @ {f}" for s in stacks for f in fingerprints if f"{s} @ {f}" in present]
    return df.assign(stack_id=labels), order
