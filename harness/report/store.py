"""The results store: ``<store>/runs/run_id=<id>/<machine>.parquet``, the tidy frame's rows plus
``run_time``, queried with DuckDB. Ingesting upserts by record identity (a run merged twice
replaces its rows; shards add up). Per run and machine, not per stack: 110 columns of metadata.
"""

from __future__ import annotations

import contextlib
import difflib
import fcntl
import json
import os
import re
import warnings
from typing import TYPE_CHECKING, Literal

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness import metrics
from harness import records as rec
from harness.config import ids
from harness.report import tables

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence
    from pathlib import Path

RUNS = "runs"
VIEW = "records"  # the view `connect` creates over every file of the store
# The same measurement: one repeat of one cell on one stack and machine in one run.
IDENTITY = ["run_id", "machine_fingerprint", "stack_id", "cell_id", "repeat", "mode"]
RUN_ID_FORMAT = "%Y%m%d-%H%M%S"  # harness.commands.bench.new_run_id's, for runs without times
_UNSAFE = re.compile(r"[^A-Za-z0-9._+-]+")
FILTERED = ["run_id", "stack_id", "model", "scenario", "status", "run_time"]
_ARROW = {
    "float64": pa.float64(),
    "Float64": pa.float64(),
    "Int64": pa.int64(),
    "boolean": pa.bool_(),
}
# Reading a file back: the nullable dtypes the frame had (the files carry no pandas metadata).
_PANDAS = {pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
By = Literal["run", "release"]


class StoreError(Exception):
    """No run folder there, an empty store, an unknown name or a bad query; one line."""


class StoreWarning(UserWarning):
    """The store could not take a run; the run's own records are untouched."""


def file_name(text: object) -> str:
    """A file-name-safe spelling (the site's run folders too); the true value stays in the rows."""
    return _UNSAFE.sub("_", str(text)).strip("._") or "_"


def run_times(df: pd.DataFrame, manifest: dict[str, object]) -> pd.Series[pd.Timestamp]:
    """Per row, when its run started: the earliest record, else run.json, else the run id."""
    first = df.groupby("run_id")["started_at"].transform("min")
    when = pd.to_datetime(first, unit="s", utc=True)
    started = manifest.get("started_at")
    if isinstance(started, str):
        same = df["run_id"] == manifest.get("run_id")
        manifest_time = pd.Series(pd.to_datetime(started, utc=True, errors="coerce"), df.index)
        when = when.mask(when.isna() & same, manifest_time)
    from_id = pd.to_datetime(df["run_id"], format=RUN_ID_FORMAT, utc=True, errors="coerce")
    return when.fillna(from_id).astype("datetime64[us, UTC]")


def to_table(df: pd.DataFrame) -> pa.Table:
    """The frame as Arrow with one type per column kind (text columns of None included)."""
    schema = pa.schema(
        pa.field(
            str(c),
            pa.timestamp("us", tz="UTC") if c == "run_time" else _ARROW.get(str(t), pa.string()),
        )
        for c, t in df.dtypes.items()
    )
    table = pa.Table.from_pandas(df, schema=schema, preserve_index=False)
    return table.replace_schema_metadata(None)  # pandas' own metadata: 14 kB a file


def frame(run_dir: Path) -> pd.DataFrame:
    """A run folder's records as the store's rows (empty when it has none)."""
    if not (run_dir / "raw").is_dir():
        raise StoreError(f"{run_dir}: not a run folder (no raw/ inside)")
    records = rec.read_run(run_dir)
    if not records:
        return pd.DataFrame()
    try:
        manifest = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = {}
    df = tables.to_frame(records)
    df["run_time"] = run_times(df, manifest if isinstance(manifest, dict) else {})
    return df


def file_for(store: Path, run: object, machine: object) -> Path:
    return store / RUNS / f"run_id={file_name(run)}" / f"{file_name(machine)}.parquet"


@contextlib.contextmanager
def locked(store: Path) -> Iterator[None]:
    """One writer at a time: an upsert reads a file, adds rows and swaps it in, so two at once
    (shards of one run side by side) keep only the last one's rows."""
    store.mkdir(parents=True, exist_ok=True)
    with (store / ".lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # released when the file closes, or its process dies
        yield


def write(df: pd.DataFrame, store: Path) -> int:
    """Upsert rows into their files: one per (run, machine); the newer row wins."""
    with locked(store):
        return _upsert(df, store)


def _upsert(df: pd.DataFrame, store: Path) -> int:
    for (run, machine), rows in df.groupby(
        ["run_id", "machine_fingerprint"], sort=False, dropna=False
    ):
        path = file_for(store, run, machine)
        if path.is_file():
            old = pq.read_table(path).to_pandas(types_mapper=_PANDAS.get)
            rows = pd.concat([old.reindex(columns=rows.columns), rows], ignore_index=True)  # noqa: PLW2901
            rows = rows.drop_duplicates(IDENTITY, keep="last")  # noqa: PLW2901
        save(to_table(rows), path)
    return len(df)


def save(table: pa.Table, path: Path) -> None:
    """One store file, swapped in whole: readers see the old file or the new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # Min/max only where queries filter: with 110 columns, statistics are most of a file.
    pq.write_table(table, tmp, compression="zstd", write_statistics=FILTERED)
    tmp.replace(path)


def ingest(run_dir: Path, store: Path) -> int:
    """Add (or replace) one run folder's records; returns how many records it holds."""
    df = frame(run_dir)
    return write(df, store) if len(df) else 0


def run_folders(path: Path) -> list[Path]:
    """A run folder, or every run folder under it (shard artifacts: records-*/raw/...)."""
    if (path / "raw").is_dir():
        return [path]
    found = sorted(p.parent for p in path.rglob("raw") if p.is_dir()) if path.is_dir() else []
    if not found:
        raise StoreError(f"{path}: no run folder there (no raw/ inside)")
    return found


def merge(paths: Iterable[Path], store: Path) -> list[tuple[Path, int]]:
    """Ingest run folders, or folders of them copied from other machines; (folder, records)."""
    folders = [run for path in paths for run in run_folders(path)]
    return [(run, ingest(run, store)) for run in folders]


def ingest_quietly(run_dir: Path, store: Path) -> None:
    """The end of a bench run: a store that cannot take it is a warning, never a lost run."""
    try:
        n = ingest(run_dir, store)
    except Exception as exc:  # whatever broke, the run must still finish
        warnings.warn(f"results store {store}: not updated ({exc})", StoreWarning, stacklevel=2)
    else:
        print(f"store: {n} records of {run_dir.name} in {store}")


def files(store: Path) -> list[Path]:
    return sorted((store / RUNS).glob("*/*.parquet"))


def connect(store: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the view VIEW over every file of the store."""
    found = files(store)
    if not found:
        raise StoreError(f"{store}: the results store is empty (harness history --add RUN_DIR)")
    con = duckdb.connect()
    con.read_parquet([str(p) for p in found], union_by_name=True).create_view(VIEW)
    return con


def query(store: Path, sql: str, params: Sequence[object] = ()) -> pd.DataFrame:
    con = connect(store)
    try:
        return con.execute(sql, list(params)).df()
    except duckdb.Error as exc:
        raise StoreError(" ".join(str(exc).split())) from None
    finally:
        con.close()


def near(what: str, value: str, known: Iterable[str], where: str = "") -> StoreError:
    """Unknown `value`: the error names the closest known ones (or a few, when none is)."""
    names = sorted(set(known))
    close = difflib.get_close_matches(value, names, n=5, cutoff=0.4) or names[:5]
    more = f" (of {len(names)})" if len(names) > len(close) else ""
    listed = ", ".join(close) or "none in the store"
    return StoreError(f"unknown {what} {value!r}{where}; known{more}: {listed}")


def _check(con: duckdb.DuckDBPyConnection, model: str, scenario: str, metric: str) -> None:
    if metric not in metrics.METRICS:
        raise near("metric", metric, metrics.NUMERIC)
    sql = f"SELECT DISTINCT model FROM {VIEW}"  # noqa: S608 - a constant, no user text
    models = [str(m) for (m,) in con.execute(sql).fetchall()]
    if model not in models:
        raise near("model", model, models)
    sql = f"SELECT DISTINCT scenario FROM {VIEW} WHERE model = ?"  # noqa: S608 - a constant
    scenarios = [str(s) for (s,) in con.execute(sql, [model]).fetchall()]
    if scenario not in scenarios:
        raise near("scenario", scenario, scenarios, f" of {model}")


SPREAD = (
    "count(*) AS n, count(DISTINCT run_id) AS runs, median(v) AS median, "
    "quantile_cont(v, 0.25) AS q1, quantile_cont(v, 0.75) AS q3"
)
# Per `by`: the line and x of a series, and what they group by.
SERIES = {
    "run": ("stack_id AS line, run_id, min(run_time) AS x", "stack_id, run_id"),
    "release": (
        "torch_version AS line, transformers_version AS x",
        "torch_version, transformers_version",
    ),
}


def series(store: Path, model: str, scenario: str, metric: str, by: By = "run") -> pd.DataFrame:
    """One cell's metric over the ok records, per run and stack (x: when it started) or per release
    and torch version (x: the release); columns line, x, n, runs, median, q1, q3."""
    con = connect(store)
    try:
        _check(con, model, scenario, metric)
        keys, group = SERIES[by]
        # The metric is a registry name (_check), the rest constants; values are parameters.
        sql = (
            f'SELECT {keys}, {SPREAD} FROM (SELECT *, "{metric}" AS v FROM {VIEW}) '  # noqa: S608
            "WHERE model = ? AND scenario = ? AND status = 'ok' AND v IS NOT NULL "
            f"GROUP BY {group}"
        )
        df = con.execute(sql, [model, scenario]).df()
    finally:
        con.close()
    if by == "run":
        return df.sort_values(["x", "line"], ignore_index=True).drop(columns="run_id")
    key = ids.version_key
    ranks = [(key(x), key(line)) for x, line in zip(df["x"], df["line"], strict=True)]
    order = sorted(range(len(df)), key=ranks.__getitem__)
    return df.iloc[order].reset_index(drop=True)
