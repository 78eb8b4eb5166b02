"""finish, summarize and clean_staging, fed plain results as the DAG's tasks hand them over."""

from __future__ import annotations

from contextlib import nullcontext

import pytest
from airflow.sdk import ObjectStoragePath
from airflow.sdk.exceptions import AirflowFailException
from zuora_etl.state import StateStore
from zuora_etl.summary import clean_staging, finish, run_rows, summarize

PLAN = {"family": "erp_invoices", "mode": "sync", "run_id": "r1", "staging_dir": "",
        "objects": {"invoices": {"watermark": "2026-01-01T00:00:00+00:00", "windows": [], "by_parent": None},
                    "invoice_items": {"watermark": None, "windows": [], "by_parent": "invoices"}}}  # fmt: skip
W1 = {"lo": "2026-01-01T00:00:00+00:00", "hi": "2026-01-01T06:00:00+00:00"}
W2 = {"lo": "2026-01-01T06:00:00+00:00", "hi": "2026-01-01T12:00:00+00:00"}


def ex(rows: int, window: dict | None = None, quarantined: int = 0) -> dict:
    """A transforming extract's result."""
    return {"parts": [], "rows": rows, "pages": 1, "api_calls": 1, "max_updated": None,
            "windows": [window] if window else [], "extract_seconds": 0.5, "raw_parts": [], "rows_in": rows,
            "rows_out": rows - quarantined, "quarantined": quarantined, "transform_seconds": 0.1}  # fmt: skip


def results(
    load_items: dict | None = None, mark: dict | None = None, readback: dict | None = None, quarantined: int = 0
) -> dict:
    load = {"loaded": 15 - quarantined, "unchanged": 0, "rejected": 0, "held": 0}
    invoices = {"extract": [ex(10, W1), ex(5, W2, quarantined)], "load": load, "mark": mark, "readback": readback}
    items = {"extract": ex(30), "load": load_items}
    return {"invoices": invoices, "invoice_items": items}


MARK, READBACK = {"marked": 15}, {"loaded": 15, "api_calls": 1}


def statuses(rows) -> dict:
    return {r["object"]: r["status"] for r in rows}


def test_slices_are_summed_and_the_window_spans_them():
    rows = run_rows(
        "zuora_erp_invoices", "erp_invoices", "r1", PLAN, results({"loaded": 30, "rejected": 0}, MARK, READBACK), {}
    )
    inv = rows[0]
    assert (inv["rows_extracted"], inv["api_calls"], inv["rows_marked"]) == (15, 3, 15)
    assert inv["window_lo"].hour == 0 and inv["window_hi"].hour == 12
    assert statuses(rows) == {"invoices": "success", "invoice_items": "success"}
    assert inv["seconds"] == round(2 * 0.5 + 2 * 0.1, 3)  # each slice's extract and transform, and no load time


def test_records_a_mapped_slice_quarantined_leave_the_object_partial():
    rows = run_rows("d", "erp_invoices", "r1", PLAN, results({"loaded": 30}, MARK, READBACK, quarantined=2), None)
    assert rows[0]["rows_quarantined"] == 2 and rows[0]["rows_loaded"] == 13
    assert statuses(rows) == {"invoices": "partial", "invoice_items": "success"}


@pytest.mark.parametrize(
    ("load_items", "mark", "readback", "expected"),
    [
        (None, MARK, READBACK, {"invoices": "success", "invoice_items": "failed"}),  # a load that did not run
        ({"loaded": 29, "rejected": 1}, MARK, READBACK, {"invoices": "success", "invoice_items": "partial"}),
        ({"loaded": 30}, None, None, {"invoices": "failed", "invoice_items": "success"}),  # marking failed
        ({"loaded": 30}, MARK, None, {"invoices": "failed", "invoice_items": "success"}),  # read-back failed
    ],
)
def test_an_object_is_green_only_when_every_step_landed(load_items, mark, readback, expected):
    assert statuses(run_rows("d", "erp_invoices", "r1", PLAN, results(load_items, mark, readback), None)) == expected


def test_a_dry_run_is_reported_as_such():
    plan = {**PLAN, "mode": "dry_run"}
    rows = run_rows("d", "erp_invoices", "r1", plan, results({"loaded": 3, "dry_run": True}, None, None), None)
    assert statuses(rows) == {"invoices": "dry_run", "invoice_items": "dry_run"}


def test_the_watermark_after_is_where_advance_moved_it():
    moved = {"invoices": {"from": "2026-01-01T00:00:00+00:00", "to": "2026-01-01T11:00:00+00:00"}}
    rows = run_rows("d", "erp_invoices", "r1", PLAN, results({"loaded": 1}, MARK, READBACK), moved)
    assert rows[0]["watermark_after"] == "2026-01-01T11:00:00+00:00" and rows[1]["watermark_after"] is None


@pytest.fixture
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_ETL_STATE", f'{{"conn_type": "sqlite", "host": "{tmp_path}/state.db"}}')
    from zuora_etl.db import dispose_engines

    dispose_engines()
    yield StateStore()
    dispose_engines()


def test_summarize_records_the_rows_and_fails_without_retry_when_records_were_left(state):
    with pytest.raises(AirflowFailException, match="partial run"):
        summarize(
            "zuora_erp_invoices", "erp_invoices", "r1", PLAN, results({"loaded": 29, "held": 1}, MARK, READBACK), {}
        )
    assert state.run_statuses("r1", "erp_invoices") == {"invoices": "success", "invoice_items": "partial"}


def test_staging_is_removed_only_when_summarize_recorded_no_failure(state, tmp_path):
    for run_id, load in (("ok", {"loaded": 1}), ("bad", None)):
        staging = ObjectStoragePath(f"file://{tmp_path}/staging/erp_invoices/{run_id}")
        (staging / "invoices").mkdir(parents=True)
        (staging / "invoices" / "part.parquet").write_text("x")
        plan = {**PLAN, "run_id": run_id, "staging_dir": str(staging)}
        with pytest.raises(AirflowFailException) if load is None else nullcontext():
            summarize("d", "erp_invoices", run_id, plan, results(load, MARK, READBACK), None)
        clean_staging(plan, state)
        assert staging.exists() is (load is None), run_id


def test_a_run_whose_plan_failed_is_recorded_as_failed_under_its_family():
    nothing = dict.fromkeys(("extract", "load", "mark", "readback"))
    rows = run_rows(
        "zuora_erp_invoices", "erp_invoices", "r1", None, {"invoices": nothing, "invoice_items": nothing}, None
    )
    assert {r["family"] for r in rows} == {"erp_invoices"} and set(statuses(rows).values()) == {"failed"}


def staged(tmp_path, run_id: str) -> ObjectStoragePath:
    staging = ObjectStoragePath(f"file://{tmp_path}/staging/erp_invoices/{run_id}")
    (staging / "invoices").mkdir(parents=True)
    (staging / "invoices" / "part.parquet").write_text("x")
    return staging


MOVED = {"invoices": {"from": "2026-01-01T00:00:00+00:00", "to": "2026-01-01T11:00:00+00:00"}}


@pytest.mark.parametrize(
    ("load_items", "advances", "verdict"),
    [
        ({"loaded": 30}, True, None),  # every chain landed: the watermarks move, the run is green
        ({"loaded": 29, "held": 1}, True, "partial run"),  # landed, records left in dead letters
        (None, False, "did not complete"),  # a load failed: no watermark moves, staging kept
    ],
)
def test_finish_moves_watermarks_only_when_every_chain_landed_and_always_hands_the_lease_on(
    state, tmp_path, load_items, advances, verdict
):
    staging = staged(tmp_path, "r1")
    plan = {**PLAN, "staging_dir": str(staging)}
    assert state.take_sync_lease("erp_invoices", "r1", lambda _: True) is None
    calls = []

    def advance():
        calls.append(1)
        return MOVED

    with pytest.raises(AirflowFailException, match=verdict) if verdict else nullcontext():
        rows = finish("d", "erp_invoices", "r1", plan, results(load_items, MARK, READBACK), advance, state)
        assert rows[0]["watermark_after"] == MOVED["invoices"]["to"]
    assert bool(calls) is advances
    assert state.take_sync_lease("erp_invoices", "r2", lambda _: True) is None, "the lease was handed on"
    assert staging.exists() is (load_items is None), "staging is kept only for the rerun of a failed run"
    recorded = state.run_statuses("r1", "erp_invoices")
    assert recorded["invoice_items"] == {None: "failed", 30: "success", 29: "partial"}[(load_items or {}).get("loaded")]


def test_finish_keeps_the_lease_and_records_nothing_while_advance_retries(state, tmp_path):
    staging = staged(tmp_path, "r1")
    plan = {**PLAN, "staging_dir": str(staging)}
    state.take_sync_lease("erp_invoices", "r1", lambda _: True)

    def advance():
        raise ConnectionError("metadata database unreachable")

    with pytest.raises(ConnectionError):
        finish("d", "erp_invoices", "r1", plan, results({"loaded": 30}, MARK, READBACK), advance, state)
    assert state.take_sync_lease("erp_invoices", "r2", lambda run: run == "r1") == "r1", "r1 still holds it"
    assert staging.exists() and not state.run_statuses("r1", "erp_invoices")
