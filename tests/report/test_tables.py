"""Records as tables: the tidy frame's columns and labels, ordering, and the summary."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import pytest
from recordkit import HANDMADE, SMOKE, make_record

from harness import records
from harness.report import tables

if TYPE_CHECKING:
    import pandas as pd


def _frame() -> pd.DataFrame:
    return tables.to_frame(records.read_run(HANDMADE))


def test_frame_has_one_row_per_record_and_cell_id_labels() -> None:
    df = _frame()
    assert len(df) == 10
    assert set(df["low_cpu_mem_usage"]) == {"omit", "false"}
    assert set(df["device_map"]) == {"none", "cpu"}
    assert df["params"].dtype == "Int64"
    assert df["peak_mb"].dtype == "float64"
    assert math.isnan(df.loc[df["status"] == "error", "peak_mb"].iloc[0])


def test_install_errors_take_their_runs_machine() -> None:
    df = _frame()
    install = df.loc[df["status"] == "install_error"]
    assert set(install["machine_fingerprint"]) == {"aaaaaaaaaaaa"}
    assert install["machine"].isna().all()


def test_unknown_fields_are_left_out_and_golden_may_be_absent() -> None:
    df = tables.to_frame([make_record(future_field={"x": 1})])
    assert "future_field" not in df.columns
    assert df["golden"].isna().all()
    assert df["golden_detail"].isna().all()


def test_golden_detail_is_kept_as_json_text() -> None:
    detail = [{"prompt": "Hi", "verdict": "drift", "position": 3}]
    df = tables.to_frame([make_record(golden="drift", golden_detail=detail)])
    assert json.loads(df["golden_detail"].iloc[0]) == detail
    assert tables.golden_note(df["golden_detail"].iloc[0]) == "'Hi': drift at new token 3"


def test_load_rss_is_relative_to_the_pre_load_baseline() -> None:
    df = tables.to_frame([make_record(load_rss=300.0, load_peak=600.0)])
    assert df["load_rss_mb"].iloc[0] == 300.0
    assert df["phase_load_hwm_mb"].iloc[0] == 1100.0
    assert df["weights_mb"].iloc[0] == pytest.approx(124_000_000 * 4 / 2**20)


def test_stacks_are_ordered_by_version_not_by_name() -> None:
    df = tables.to_frame(records.read_run(SMOKE))
    assert tables.stack_order(df) == [
        "tf4.46.3-torch2.5.1-py3.11",
        "tf4.57.6-torch2.8.0-py3.11",
        "tf5.5.4-torch2.5.1-py3.11",
        "tf5.24.0-torch2.13.0-py3.11",
    ]


def test_a_stack_without_recorded_versions_is_placed_by_its_id() -> None:
    assert tables.stack_order(_frame()) == [
        "tf4.46.3-torch2.5.1-py3.11",
        "tf5.5.4-torch2.5.1-py3.11",
        "tf5.24.0-torch2.13.0-py3.11",
    ]


def test_summary_spreads_and_worst_verdicts() -> None:
    summary = tables.summarize(_frame())
    assert len(summary) == 6
    a = summary.loc[
        (summary["stack_id"] == "tf4.46.3-torch2.5.1-py3.11")
        & (summary["scenario"] == "st/fp32/lcmu=omit/dm=none")
    ].iloc[0]
    assert (a["n"], a["n_ok"], a["status"], a["golden"]) == (2, 2, "ok", "match")
    assert (a["peak_mb_median"], a["peak_mb_min"], a["peak_mb_max"]) == (21.0, 20.0, 22.0)
    assert (a["peak_mb_q1"], a["peak_mb_q3"]) == (20.5, 21.5)
    b = summary.loc[
        (summary["stack_id"] == "tf5.5.4-torch2.5.1-py3.11")
        & (summary["scenario"] == "st/fp32/lcmu=omit/dm=none")
    ].iloc[0]
    # One ok repeat and one error: the metrics come from the ok one, the status is the worst.
    assert (b["status"], b["statuses"], b["golden"]) == ("error", "ok 1, error 1", "drift")
    assert b["peak_mb_median"] == 17.5
    assert b["message"].startswith("RuntimeError: <img")


def test_failures_include_failing_golden_verdicts() -> None:
    df = tables.to_frame(
        [make_record(golden="stale"), make_record(golden="drift"), make_record(status="timeout")]
    )
    assert list(tables.failures(df)["golden"].fillna("-")) == ["stale", "-"]
