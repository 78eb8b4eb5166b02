"""zuora_reconciliation for real (dag.test, emulator over HTTP, SQLite targets): a clean family
reconciles clean; rows deleted from the target, records deleted in Zuora or leaving the family's
selection, silent changes in Zuora and aged target rows are reported exactly, id by id and by kind;
`repair` fixes them through the replay chains and marks extras, and the next run is clean."""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from zuora_etl.reconciliation_store import diffs, summary

from tests.integration.test_replay import posted_invoices, silently_change
from tests.sync_harness import SyncEnv

TOMORROW = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
WHOLE_HISTORY = {"families": ["erp_invoices"], "period_start": "2000-01-01", "period_end": TOMORROW, "repair": False}


@pytest.fixture
def reports(env: SyncEnv, tmp_path: Path, monkeypatch) -> Path:
    root = tmp_path / "reports"
    monkeypatch.setenv("AIRFLOW_VAR_ZUORA_ETL_REPORTS_ROOT", f"file://{root}")
    return root


def reconcile(env: SyncEnv, **conf) -> str:
    return env.run("zuora_reconciliation", {**WHOLE_HISTORY, **conf}, defaults=False)


def latest(env: SyncEnv) -> tuple[str, dict[str, dict], dict[tuple[str, str], set[str]]]:
    """The last run's id, its summary rows by object and its differences by (object, kind)."""
    with env.engine("zuora_etl_state").connect() as conn:
        run_id = conn.execute(sa.select(summary.c.run_id).order_by(summary.c.finished_at.desc()).limit(1)).scalar()
        rows = {r["object"]: dict(r) for r in conn.execute(sa.select(summary).where(summary.c.run_id == run_id))
                .mappings()}  # fmt: skip
        found: dict[tuple[str, str], set[str]] = defaultdict(set)
        for r in conn.execute(sa.select(diffs).where(diffs.c.run_id == run_id)).mappings():
            found[(r["object"], r["kind"])].add(r["id"])
    return run_id, rows, dict(found)


def items_of(env: SyncEnv, invoice_id: str) -> list[str]:
    return [i["id"] for i in env.emu.store.truth("invoice-items") if i["invoiceId"] == invoice_id]


def report_folder(reports: Path, run_id: str) -> Path:
    return reports / "reconciliation" / re.sub(r"[^A-Za-z0-9_.+-]", "_", run_id)  # as reports.report_dir names it


def test_reconciliation_finds_exactly_what_differs_and_repair_fixes_it(env, reports):
    assert env.run("zuora_erp_invoices") == "success"
    assert reconcile(env) == "success"
    run_id, rows, found = latest(env)
    assert found == {}
    assert rows["invoices"]["zuora_count"] == rows["invoices"]["target_count"] == len(posted_invoices(env))
    assert rows["invoice_items"]["zuora_count"] == rows["invoice_items"]["target_count"] > 0
    assert (report_folder(reports, run_id) / "report.html").exists()

    posted = [i for i in posted_invoices(env) if items_of(env, i["id"])]
    lost, lost_item_of, gone, gone_item_of, silent, silent_item_of, aged, canceled = posted[:8]
    lost_item, gone_item = items_of(env, lost_item_of["id"])[0], items_of(env, gone_item_of["id"])[0]
    silent_item = next(i for i in env.emu.store.truth("invoice-items") if i["invoiceId"] == silent_item_of["id"])
    erp = env.engine("zuora_erp_sink")
    with erp.begin() as conn:  # rows lost from the target, one row aged by a day
        conn.execute(sa.text("DELETE FROM invoices WHERE id = :i"), {"i": lost["id"]})
        conn.execute(sa.text("DELETE FROM invoice_items WHERE id = :i"), {"i": lost_item})
        old = conn.execute(sa.text("SELECT updated_date FROM invoices WHERE id = :i"), {"i": aged["id"]}).scalar()
        older = datetime.fromisoformat(str(old)) - timedelta(days=1)
        conn.execute(sa.text("UPDATE invoices SET updated_date = :u WHERE id = :i"), {"u": older, "i": aged["id"]})
    env.emu.store.mutate([  # deleted in Zuora: a whole invoice with its items, and one item of another
        {"op": "delete", "object": "invoices", "ids": [gone["id"]]},
        {"op": "delete", "object": "invoice-items", "ids": [*items_of(env, gone["id"]), gone_item]},
    ])  # fmt: skip
    silently_change(env, "invoices", silent, balance=4321.5)  # no new updatedDate
    silently_change(env, "invoice-items", silent_item, chargeAmount=999.25)
    canceled_items = items_of(env, canceled["id"])
    env.emu.store.mutate(
        [{"op": "update", "object": "invoices", "ids": [canceled["id"]], "set": {"status": "Canceled"}}]
    )
    gone_items = [i for i in _target_items(erp, gone["id"])]
    assert gone_items

    assert reconcile(env) == "failed"  # differences above the threshold (0): the alert
    run_id, rows, found = latest(env)
    assert found == {
        ("invoices", "missing"): {lost["id"]},
        ("invoice_items", "missing"): {lost_item},
        ("invoices", "extra"): {gone["id"], canceled["id"]},
        ("invoice_items", "extra"): {gone_item, *gone_items, *canceled_items},
        ("invoices", "mismatch"): {silent["id"]},
        ("invoice_items", "mismatch"): {silent_item["id"]},
        ("invoices", "stale"): {aged["id"]},
    }
    assert rows["invoices"]["missing"] == 1 and rows["invoices"]["extra"] == 2 and rows["invoices"]["stale"] == 1
    folder = report_folder(reports, run_id)
    csv_text = (folder / "differences-erp_invoices.csv").read_text(encoding="utf-8")
    assert silent["id"] in csv_text and "balance: target" in csv_text and "4321.5" in csv_text
    assert (folder / "chart-erp_invoices.png").read_bytes()[:4] == b"\x89PNG"
    assert "chart-erp_invoices.png" in (folder / "report.html").read_text(encoding="utf-8")

    assert reconcile(env, repair=True) == "success"  # nothing left after repair: no alert
    run_id, rows, found = latest(env)
    assert sum(len(v) for v in found.values()) == sum(r["repaired"] for r in rows.values()) > 0
    with erp.connect() as conn:
        balance = conn.execute(sa.text("SELECT balance FROM invoices WHERE id = :i"), {"i": silent["id"]}).scalar()
        marked = dict(conn.execute(sa.text("SELECT id, zuora_deleted_at FROM invoices WHERE id IN (:a, :b)"),
                                   {"a": gone["id"], "b": canceled["id"]}).tuples().all())  # fmt: skip
        restored = conn.execute(sa.text("SELECT count(*) FROM invoices WHERE id = :i"), {"i": lost["id"]}).scalar()
    assert float(balance) == 4321.5 and restored == 1
    assert set(marked) == {gone["id"], canceled["id"]} and all(marked.values())  # flagged, never deleted

    assert reconcile(env) == "success"
    _, rows, found = latest(env)
    assert found == {}
    assert all(r["missing"] + r["extra"] + r["stale"] + r["mismatched"] == 0 for r in rows.values())


def test_a_threshold_above_the_differences_lets_the_run_succeed(env, reports, monkeypatch):
    assert env.run("zuora_erp_invoices") == "success"
    inv = posted_invoices(env)[0]
    silently_change(env, "invoices", inv, balance=1.5)
    monkeypatch.setenv("AIRFLOW_VAR_ZUORA_ETL_RECONCILIATION_ALERT_THRESHOLD", "1")
    assert reconcile(env) == "success"
    _, _, found = latest(env)
    assert found == {("invoices", "mismatch"): {inv["id"]}}


def _target_items(engine: sa.Engine, invoice_id: str) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text("SELECT id FROM invoice_items WHERE invoice_id = :i"), {"i": invoice_id})
                    .scalars())  # fmt: skip
