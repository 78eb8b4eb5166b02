"""A sync DAG's other ways to run, for real (dag.test, emulator over HTTP, SQLite): a dry run, a
date-range backfill through the params, and slices across a same-second cluster."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from zuora_etl.families import get_family
from zuora_etl.state import StateStore
from zuora_etl.windows import parse_instant

from tests.integration.mutations import BULK, mutate
from tests.sync_harness import SyncEnv, assert_family_matches, dagbag


def snapshot(env: SyncEnv, conn_id: str, tables: list[str]) -> dict:
    with env.engine(conn_id).connect() as conn:
        return {t: sorted(map(tuple, conn.execute(sa.text(f"SELECT * FROM {t}")).all())) for t in tables}


def latest_runs(family: str) -> dict[str, dict]:
    runs: dict[str, dict] = {}
    for r in StateStore().runs(family):  # newest first
        runs.setdefault(r["object"], r)
    return runs


def test_a_dry_run_writes_nothing_and_reports_what_would_change(env):
    assert env.run("zuora_crm_invoices") == "success"
    watermark = env.watermark("crm_invoices", "invoices")
    before = snapshot(env, "zuora_crm_sink", ["invoices", "invoice_items"])
    ledger_before = _ledger_rows(env)
    mutate(env.emu, get_family("crm_invoices"))  # per object: 150 touched (5 visibly changed), 1 created

    assert env.run("zuora_crm_invoices", {"dry_run": True}) == "success"
    assert snapshot(env, "zuora_crm_sink", ["invoices", "invoice_items"]) == before
    assert env.watermark("crm_invoices", "invoices") == watermark
    assert _ledger_rows(env) == ledger_before
    runs = latest_runs("crm_invoices")
    for obj in ("invoices", "invoice_items"):
        assert runs[obj]["status"] == "dry_run" and runs[obj]["mode"] == "dry_run"
        assert (runs[obj]["rows_inserted"], runs[obj]["rows_loaded"]) == (1, BULK + 1), obj

    assert env.run("zuora_crm_invoices") == "success"  # and the real run then loads exactly that
    real = latest_runs("crm_invoices")
    assert {o: real[o]["rows_loaded"] for o in real} == {"invoices": BULK + 1, "invoice_items": BULK + 1}
    assert_family_matches(env, "crm_invoices")


def _ledger_rows(env: SyncEnv) -> int:
    with env.engine("zuora_etl_state").connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM zuora_etl_ledger")).scalar_one()


def test_a_backfill_loads_exactly_its_range_across_a_cluster_on_a_slice_border(env):
    """150 invoices share the second that splits the range in two slices: each lands once."""
    second = datetime.now(UTC).replace(microsecond=0) - timedelta(days=3)
    cluster = [r["id"] for r in env.emu.store.truth("invoices")[:150]]
    env.emu.store.mutate([{"op": "update", "object": "invoices", "ids": cluster, "set": {}}], at=second.timestamp())
    start, end = second - timedelta(days=2), second + timedelta(days=2)

    conf = {"start": start.isoformat(), "end": end.isoformat(), "slices": 2}
    assert env.run("zuora_crm_invoices", conf) == "success"

    expected = {r["id"] for r in env.emu.store.truth("invoices") if start <= parse_instant(r["updatedDate"]) < end}
    with env.engine("zuora_crm_sink").connect() as conn:
        loaded = set(conn.execute(sa.text("SELECT id FROM invoices")).scalars())
    assert set(cluster) <= expected and loaded == expected
    assert env.watermark("crm_invoices", "invoices") is None, "a backfill never moves a watermark"
    runs = latest_runs("crm_invoices")
    assert runs["invoices"]["mode"] == "backfill" and runs["invoices"]["rows_extracted"] == len(expected)


def test_a_start_that_is_not_a_date_is_refused_at_the_trigger(env):
    """Airflow validates a run's conf against the params when it is triggered (form, CLI, REST)."""
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag().dags["zuora_crm_invoices"]
    with pytest.raises(ParamValidationError, match="start"):
        params = copy.deepcopy(dag.params)
        params["start"] = "June 1st"
        params.validate()
    params = copy.deepcopy(dag.params)
    params.update({"start": "2026-06-01", "end": "2026-06-30T12:00:00+00:00"})
    assert params.validate()["start"] == "2026-06-01"


def test_a_sync_skips_while_another_sync_of_its_family_runs_and_a_backfill_does_not(env, monkeypatch):
    from zuora_etl import dag_factory

    StateStore().take_sync_lease("crm_invoices", "scheduled__still-running", lambda _: False)
    monkeypatch.setattr(dag_factory, "run_alive", lambda ti, dag_ids, own: {"scheduled__still-running"}.__contains__)
    assert env.run("zuora_crm_invoices") == "success"  # skipped: green, nothing read or written
    assert env.watermark("crm_invoices", "invoices") is None
    assert not sa.inspect(env.engine("zuora_crm_sink")).has_table("invoices")
    assert latest_runs("crm_invoices") == {}

    start = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    assert env.run("zuora_crm_invoices", {"start": start}) == "success"  # a backfill needs no lease
    assert latest_runs("crm_invoices")["invoices"]["mode"] == "backfill"

    monkeypatch.setattr(dag_factory, "run_alive", lambda ti, dag_ids, own: lambda run_id: False)  # it ended
    assert env.run("zuora_crm_invoices") == "success"
    assert env.watermark("crm_invoices", "invoices") is not None
