"""A sync, a backfill and a replay of one family side by side: the sync lease, pending ledger rows
of live runs, and asking Airflow whether a run is alive."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from zuora_etl.liveness import run_alive
from zuora_etl.state import PENDING, StateStore


@pytest.fixture
def state(tmp_path, monkeypatch) -> StateStore:
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_ETL_STATE", f'{{"conn_type": "sqlite", "host": "{tmp_path}/state.db"}}')
    from zuora_etl.db import dispose_engines

    dispose_engines()
    yield StateStore()
    dispose_engines()


def test_one_sync_holds_the_lease_until_it_ends_or_dies(state):
    running = {"sync-1"}
    alive = running.__contains__
    assert state.take_sync_lease("erp_invoices", "sync-1", alive) is None
    assert state.take_sync_lease("erp_invoices", "sync-1", alive) is None  # a retry of the holder
    assert state.take_sync_lease("erp_invoices", "sync-2", alive) == "sync-1"
    assert state.take_sync_lease("crm_invoices", "sync-2", alive) is None  # another family: its own lease
    running.clear()  # sync-1 died without releasing
    assert state.take_sync_lease("erp_invoices", "sync-2", alive) is None
    state.release_sync_lease("erp_invoices", "sync-1")  # a late release of the old holder changes nothing
    assert state.take_sync_lease("erp_invoices", "sync-3", {"sync-2"}.__contains__) == "sync-2"
    state.release_sync_lease("erp_invoices", "sync-2")
    assert state.take_sync_lease("erp_invoices", "sync-3", lambda _: True) is None


def test_pending_rows_of_a_live_run_are_left_to_it(state):
    state.record_outcomes("backfill-live", "erp_invoices", "invoices", PENDING, [("a", None)])
    state.record_outcomes("sync-dead", "erp_invoices", "invoices", PENDING, [("b", None)])
    pending = state.pending("erp_invoices", "invoices", alive={"backfill-live"}.__contains__)
    assert [rid for _, rid, _ in pending] == ["b"]
    assert {rid for _, rid, _ in state.pending("erp_invoices", "invoices")} == {"a", "b"}


class FakeTi:
    def __init__(self, states: dict[tuple[str, str], str]) -> None:
        self.states, self.calls = states, 0

    def get_dagrun_state(self, dag_id: str, run_id: str) -> str:
        self.calls += 1
        if (dag_id, run_id) not in self.states:
            raise LookupError(f"no run {run_id} of {dag_id}")
        return self.states[(dag_id, run_id)]


def test_run_alive_asks_each_dag_once_per_run():
    ti = FakeTi({("zuora_erp_invoices", "s1"): "running", ("zuora_replay", "r1"): "queued",
                 ("zuora_erp_invoices", "s0"): "failed"})  # fmt: skip
    alive = run_alive(ti, ["zuora_erp_invoices", "zuora_replay"], own_run_id="me")
    assert [alive(r) for r in ("s1", "r1", "s0", "unknown", "me")] == [True, True, False, False, False]
    calls = ti.calls
    assert alive("s1") and ti.calls == calls  # cached
    assert run_alive(SimpleNamespace(), ["x"], "me")("s1") is False  # no API (a unit test's context): dead


def test_a_backfill_leaders_range_covers_only_its_own_intervals(state):
    from datetime import UTC, datetime, timedelta

    june1 = datetime(2026, 6, 1, tzinfo=UTC)
    state.record_backfill_range("crm_invoices", "backfill__a", june1, june1 + timedelta(days=1))
    assert state.backfill_range_covers("crm_invoices", june1 + timedelta(hours=3), june1 + timedelta(hours=4))
    assert not state.backfill_range_covers(
        "crm_invoices", june1 + timedelta(days=1), june1 + timedelta(days=1, hours=1)
    )
    assert not state.backfill_range_covers("erp_invoices", june1, june1 + timedelta(hours=1))
