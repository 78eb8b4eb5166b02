"""A load that dies halfway (after some batches committed) moves no watermark; the rerun
converges to exactly Zuora's data without writing any record version twice."""

from __future__ import annotations

import os
import time

import sqlalchemy as sa
from zuora_etl import settings
from zuora_etl.sinks.sql import SqlSink

from tests.integration.test_sync_sqlite import assert_no_version_written_twice, ledger_rows
from tests.sync_harness import assert_family_matches


def test_crash_in_the_middle_of_a_load_then_rerun(env, monkeypatch):
    monkeypatch.setattr(settings, "PART_ROWS", 500)  # several parts, so the crash lands mid-load
    real_upsert = SqlSink.upsert
    calls = {"n": 0}

    def dying_upsert(self, mapping, frame, *, force=False, children=None):
        if mapping.table == "invoice_items":
            calls["n"] += 1
            if calls["n"] == 3:
                raise ConnectionError("target went away after two committed parts")
        return real_upsert(self, mapping, frame, force=force)

    monkeypatch.setattr(SqlSink, "upsert", dying_upsert)
    assert env.run("zuora_crm_invoices", {"slices": 1}) == "failed"  # one slice: parts of 500 in order
    assert env.watermark("crm_invoices", "invoices") is None, "no watermark moves when a load fails"
    assert env.watermark("crm_invoices", "invoice_items") is None
    partial = [r for r in ledger_rows(env) if r["object"] == "invoice_items" and r["outcome"] == "loaded"]
    assert len(partial) == 1000, "two parts of 500 had committed before the crash"

    kept = [p for p in (env.data_dir / "staging" / "crm_invoices").iterdir()]
    assert len(kept) == 1, "a failed run keeps its staging for its retries"
    week_ago = time.time() - 8 * 86400
    for path in kept[0].rglob("*"):
        os.utime(path, (week_ago, week_ago))

    monkeypatch.setattr(SqlSink, "upsert", real_upsert)
    assert env.run("zuora_crm_invoices") == "success"
    assert not (env.data_dir / "staging" / "crm_invoices").exists() or not any(
        (env.data_dir / "staging" / "crm_invoices").iterdir()
    ), "the successful rerun removes its own staging and the stale staging of the failed run"
    assert_family_matches(env, "crm_invoices")
    assert env.watermark("crm_invoices", "invoice_items") is not None
    assert_no_version_written_twice(ledger_rows(env))


def test_a_worker_dying_right_after_the_commit_still_leaves_every_row_ledgered(env, monkeypatch):
    monkeypatch.setattr(settings, "PART_ROWS", 500)
    real_upsert = SqlSink.upsert
    calls = {"n": 0}

    def commit_then_die(self, mapping, frame, *, force=False, children=None):
        outcome = real_upsert(self, mapping, frame, force=force)
        if mapping.table == "invoice_items":
            calls["n"] += 1
            if calls["n"] == 2:
                raise SystemExit("worker killed after the target committed part 2")
        return outcome

    monkeypatch.setattr(SqlSink, "upsert", commit_then_die)
    assert env.run("zuora_crm_invoices", {"slices": 1}) == "failed"  # one slice: parts of 500 in order
    rows = [r for r in ledger_rows(env) if r["object"] == "invoice_items"]
    assert sum(r["outcome"] == "pending" for r in rows) == 500, "the dead worker's part is written ahead"

    monkeypatch.setattr(SqlSink, "upsert", real_upsert)
    assert env.run("zuora_crm_invoices") == "success"
    rows = ledger_rows(env)
    assert not [r for r in rows if r["outcome"] == "pending"]
    loaded = {r["record_id"] for r in rows if r["object"] == "invoice_items" and r["outcome"] == "loaded"}
    with env.engine("zuora_crm_sink").connect() as conn:
        stored = set(conn.execute(sa.text("SELECT id FROM invoice_items")).scalars())
    assert stored and stored == loaded, "every committed row has its ledger entry"
    assert_no_version_written_twice(rows)
