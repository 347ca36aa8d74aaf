"""The results store: idempotent ingest, merging runs and shard artifacts, series as medians."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from recordkit import DEFAULT, SMOKE, make_record, write_run

from harness import records as rec
from harness.report import store

if TYPE_CHECKING:
    from pathlib import Path

CELL = ("gpt2-124m", "st/fp32/lcmu=omit/dm=none")


def _count(root: Path) -> int:
    return int(store.query(root, "SELECT count(*) AS n FROM records")["n"].iloc[0])


def test_ingesting_a_run_twice_replaces_it(tmp_path: Path) -> None:
    root = tmp_path / "store"
    assert store.ingest(DEFAULT, root) == 120
    files = store.files(root)
    assert store.ingest(DEFAULT, root) == 120
    assert _count(root) == 120
    assert store.files(root) == files
    keys = store.query(root, f"SELECT {', '.join(store.IDENTITY)} FROM records")  # noqa: S608
    assert not keys.duplicated().any()


def test_ingesting_a_run_again_keeps_its_column_types(tmp_path: Path) -> None:
    """The upsert reads the old rows back: integers stay integers, a boolean with gaps a boolean."""
    records = [
        make_record(repeat=0, trust_remote_code=None),
        make_record(repeat=1, trust_remote_code=True),
    ]
    run = write_run(tmp_path / "run", records)
    root = tmp_path / "store"
    store.ingest(run, root)
    (path,) = store.files(root)
    schema = pq.read_schema(path)
    assert schema.field("trust_remote_code").type == "bool"
    assert schema.field("params").type == "int64"
    assert store.ingest(run, root) == 2
    assert pq.read_schema(path) == schema
    assert _count(root) == 2


def test_merge_of_two_runs_keeps_both(tmp_path: Path) -> None:
    root = tmp_path / "store"
    merged = store.merge([SMOKE, DEFAULT], root)
    assert [n for _, n in merged] == [8, 120]
    runs = store.query(root, "SELECT run_id, count(*) AS n FROM records GROUP BY 1 ORDER BY 1")
    assert runs.to_dict("list") == {"run_id": ["20261127-081415", "20261204-160118"], "n": [8, 120]}


def test_shard_artifacts_of_one_run_add_up(tmp_path: Path) -> None:
    """The workflow's layout: runs/records-N/{run.json,raw/<stack>.jsonl}, one run id."""
    artifacts = tmp_path / "runs"
    for i, path in enumerate(sorted((DEFAULT / "raw").glob("*.jsonl"))):
        shard = artifacts / f"records-{i % 2}"
        (shard / "raw").mkdir(parents=True, exist_ok=True)
        shutil.copy(DEFAULT / "run.json", shard / "run.json")
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
        # Split one stack's records across both shards too, as --shard does by cell.
        (shard / "raw" / path.name).write_text("".join(lines[::2]), encoding="utf-8")
        other = artifacts / f"records-{(i + 1) % 2}" / "raw"
        other.mkdir(parents=True, exist_ok=True)
        (other / path.name).write_text("".join(lines[1::2]), encoding="utf-8")
    root = tmp_path / "store"
    assert sum(n for _, n in store.merge([artifacts], root)) == 120
    store.merge([artifacts], root)  # again: replaced, not doubled
    assert _count(root) == 120


# Imported and ready, each waits for "go", so every upsert runs at the same moment.
INGEST_ON_GO = r"""
import sys, time
from pathlib import Path
from harness.report import store
run, root, go = map(Path, sys.argv[1:])
(run / "ready").touch()
while not go.exists():
    time.sleep(0.002)
store.ingest(run, root)
"""


def test_shards_ingested_at_once_lose_no_record(tmp_path: Path) -> None:
    """Shards of one run on one machine (`--shard i/n` side by side) each upsert the same file:
    each reads it, adds its rows and swaps it in, so without a lock the last one wins."""
    runs = [
        write_run(tmp_path / f"shard-{i}", [make_record(repeat=i, run_id="one")]) for i in range(6)
    ]
    root, go = tmp_path / "store", tmp_path / "go"
    procs = [
        subprocess.Popen([sys.executable, "-c", INGEST_ON_GO, str(run), str(root), str(go)])
        for run in runs
    ]
    deadline = time.monotonic() + 120
    while not all((run / "ready").exists() for run in runs) and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    assert [p.wait(timeout=120) for p in procs] == [0] * len(runs)
    assert _count(root) == len(runs)


def _ok_values(model: str, scenario: str, metric: str) -> pd.DataFrame:
    rows = [r for r in rec.read_run(DEFAULT) if (r["model"], r["scenario"]) == (model, scenario)]
    df = pd.DataFrame(rows)
    return df.loc[(df["status"] == "ok") & df[metric].notna()]


@pytest.mark.parametrize("metric", ["peak_mb", "load_s", "tokens_per_s"])
def test_series_are_the_medians_and_quartiles_of_the_raw_records(
    tmp_path: Path, metric: str
) -> None:
    root = tmp_path / "store"
    store.merge([SMOKE, DEFAULT], root)
    raw = _ok_values(*CELL, metric)
    by_run = store.series(root, *CELL, metric, by="run")
    expected = raw.groupby("stack_id")[metric]
    assert by_run["line"].tolist() == sorted(map(str, expected.groups))  # one run: by stack
    got = by_run.set_index("line")
    assert got["n"].to_dict() == expected.size().to_dict()
    assert got["median"].to_dict() == pytest.approx(expected.median().to_dict())
    assert got["q1"].to_dict() == pytest.approx(expected.quantile(0.25).to_dict())
    assert got["q3"].to_dict() == pytest.approx(expected.quantile(0.75).to_dict())
    by_release = store.series(root, *CELL, metric, by="release")
    # 4.46.3 < 4.57.6 < 5.5.4 < 5.24.0: version order, not text order.
    assert by_release["x"].tolist() == ["4.46.3", "4.57.6", "5.5.4", "5.24.0"]
    medians = raw.groupby("transformers_version")[metric].median().to_dict()
    assert dict(zip(by_release["x"], by_release["median"], strict=True)) == pytest.approx(medians)


def test_runs_are_placed_by_their_first_record(tmp_path: Path) -> None:
    root = tmp_path / "store"
    store.ingest(DEFAULT, root)
    first = min(r["started_at"] or np.inf for r in rec.read_run(DEFAULT))
    times = store.query(root, "SELECT DISTINCT run_time FROM records")["run_time"]
    assert times.tolist() == [pd.Timestamp(first, unit="s", tz="UTC").floor("us")]


def test_a_run_without_times_falls_back_to_its_manifest(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [make_record(run_id="r1", started_at=None)])
    (run / "run.json").write_text(
        json.dumps({"run_id": "r1", "started_at": "2026-03-04T05:06:07+00:00"})
    )
    root = tmp_path / "store"
    store.ingest(run, root)
    times = store.query(root, "SELECT run_time FROM records")["run_time"]
    assert times.tolist() == [pd.Timestamp("2026-03-04T05:06:07Z")]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("gpt2-124", CELL[1], "peak_mb"), "unknown model 'gpt2-124'; known: gpt2-124m"),
        ((CELL[0], "st/fp32/lcmu=omit/dm=nne", "peak_mb"), "known: st/fp32/lcmu=omit/dm=none"),
        ((*CELL, "peak"), "unknown metric 'peak'; known (of 18): peak_mb"),
    ],
)
def test_unknown_names_are_one_line_with_near_candidates(
    tmp_path: Path, args: tuple[str, str, str], fragment: str
) -> None:
    root = tmp_path / "store"
    store.ingest(DEFAULT, root)
    with pytest.raises(store.StoreError, match=r"^unknown") as info:
        store.series(root, *args)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_an_empty_store_and_a_folder_without_runs_are_errors(tmp_path: Path) -> None:
    with pytest.raises(store.StoreError, match="the results store is empty"):
        store.query(tmp_path / "nothing", "SELECT 1")
    with pytest.raises(store.StoreError, match="no run folder there"):
        store.merge([tmp_path], tmp_path / "store")


def test_a_store_that_cannot_take_the_run_only_warns(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", [make_record()])
    blocked = tmp_path / "store"
    blocked.write_text("a file where the store's folder should be")
    with pytest.warns(store.StoreWarning, match="not updated"):
        store.ingest_quietly(run, blocked)
    assert len(rec.read_run(run)) == 1  # the run's own records are untouched
