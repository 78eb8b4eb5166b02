"""A real SQLite state database filled the way the pipeline fills it, and the project's families."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from zuora_etl.db import create_tables
from zuora_etl.families import load_families
from zuora_etl.reconciliation_store import ReconciliationStore
from zuora_etl.sizing import save_counts, sizing_table
from zuora_etl.state import StateStore

NOW = datetime.fromisoformat("2026-12-02T12:00:00+00:00")
FAMILY, OBJECT = "crm_invoices", "invoices"


def run_row(run_id: str, obj: str, finished: str, loaded: int, **extra) -> dict:
    return {"run_id": run_id, "family": FAMILY, "object": obj, "dag_id": "zuora_crm_invoices", "mode": "sync",
            "rows_extracted": loaded + 1, "rows_loaded": loaded, "rows_unchanged": 1, "rows_quarantined": 0,
            "rows_rejected": 0, "api_calls": 3, "seconds": 1.5, "status": "success",
            "finished_at": datetime.fromisoformat(finished), **extra}  # fmt: skip


def insert_run(engine: sa.Engine, row: dict) -> None:
    """A runs row with its own finished_at (StateStore.record_run stamps now)."""
    from zuora_etl.state import runs

    with engine.begin() as conn:
        conn.execute(runs.insert().values(**row))


@pytest.fixture
def state_engine(tmp_path) -> sa.Engine:
    engine = sa.create_engine(f"sqlite:///{tmp_path}/state.db")
    yield engine
    engine.dispose()


@pytest.fixture
def families():
    return list(load_families())


@pytest.fixture
def filled(state_engine):
    """Seven runs of crm_invoices/invoices (the newest 'manual__3'), one of invoice_items, two open
    dead letters and one resolved, a reconciliation and a sizing run."""
    store = StateStore(engine=state_engine)
    for i in range(7):
        insert_run(state_engine, run_row(f"scheduled__{i}", OBJECT, f"2026-12-01T0{i}:00:00", loaded=10 + i))
    insert_run(state_engine, run_row("manual__3", OBJECT, "2026-12-02T11:00:00", loaded=42, rows_rejected=2,
                                     status="partial"))  # fmt: skip
    insert_run(state_engine, run_row("manual__3", "invoice_items", "2026-12-02T11:00:01", loaded=99))
    store.dead_letter("manual__3", FAMILY, OBJECT, "load", [("id-a", "bad date", "{}"), ("id-b", "too long", "{}")])
    store.dead_letter("manual__3", FAMILY, "invoice_items", "load", [("id-c", "bad", "{}")])
    with state_engine.begin() as conn:
        from zuora_etl.state import dead_letters

        conn.execute(dead_letters.update().where(dead_letters.c.record_id == "id-c").values(
            resolved_at=datetime(2026, 12, 2), resolution="loaded"))  # fmt: skip
    rec = ReconciliationStore(engine=state_engine)
    period = {"period_start": datetime(2026, 11, 1), "period_end": datetime(2026, 12, 1)}
    counts = {"zuora_count": 50, "target_count": 49, "missing": 1, "extra": 0, "stale": 0, "mismatched": 0,
              "repaired": 0}  # fmt: skip
    rec.record({"run_id": "rec__old", "family": FAMILY, "object": OBJECT, **period, **counts, "missing": 9})
    rec.record({"run_id": "rec__new", "family": FAMILY, "object": OBJECT, **period, **counts})
    with state_engine.begin() as conn:  # the old one finished first
        conn.execute(sa.text("UPDATE zuora_etl_reconciliation SET finished_at = '2026-11-01 00:00:00.000000' "
                             "WHERE run_id = 'rec__old'"))  # fmt: skip
    create_tables(state_engine, sizing_table)
    save_counts(state_engine, "size__1", {"invoice": {"2026-10": 5, "2026-11": 7}, "account": {"2026-11": 3}})
    save_counts(state_engine, "size__0", {"invoice": {"2026-10": 1}})
    return state_engine
