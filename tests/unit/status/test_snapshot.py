"""The page's snapshot, built from a real SQLite state database, Variables as a mapping and a fixed now."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from airflow.sdk import ObjectStoragePath
from zuora_etl.reports import run_folder
from zuora_etl.status.page import render
from zuora_etl.status.snapshot import build_snapshot, format_lag, report_path

from .conftest import FAMILY, NOW, OBJECT


def _object(snapshot, family, obj):
    fam = next(f for f in snapshot.families if f.family == family)
    return next(o for o in fam.objects if o.object == obj)


def test_watermark_lag_runs_and_dead_letters_per_object(filled, families):
    marks = {f"zuora_hwm__{FAMILY}__{OBJECT}": "2026-12-02T10:30:00+00:00"}
    snap = build_snapshot(families, filled, marks, NOW, runs_per_object=5)

    assert {f.family for f in snap.families} == {f.family for f in families}
    inv = _object(snap, FAMILY, OBJECT)
    assert inv.watermark == datetime(2026, 12, 2, 10, 30, tzinfo=UTC)
    assert inv.lag_seconds == 90 * 60
    # The newest five of eight runs, newest first; the newest carries its own counts.
    assert [r.run_id for r in inv.runs] == ["manual__3", "scheduled__6", "scheduled__5", "scheduled__4",
                                            "scheduled__3"]  # fmt: skip
    assert (inv.runs[0].rows_loaded, inv.runs[0].rows_rejected, inv.runs[0].status) == (42, 2, "partial")
    assert inv.runs[0].finished_at == datetime(2026, 12, 2, 11, tzinfo=UTC)
    assert inv.open_dead_letters == 2 and inv.oldest_dead_letter is not None
    items = _object(snap, FAMILY, "invoice_items")
    assert items.watermark is None and items.lag_seconds is None  # no Variable: never synced
    assert items.open_dead_letters == 0  # its only letter is resolved
    assert [r.rows_loaded for r in items.runs] == [99]
    family = next(f for f in snap.families if f.family == FAMILY)
    assert family.dag_id == "zuora_crm_invoices" and family.open_dead_letters == 2
    # Other families have no runs in this database.
    assert _object(snap, "erp_payments", "payments").runs == []


def test_a_watermark_that_does_not_parse_is_kept_as_text(filled, families):
    snap = build_snapshot(families, filled, {f"zuora_hwm__{FAMILY}__{OBJECT}": "yesterday"}, NOW)
    inv = _object(snap, FAMILY, OBJECT)
    assert inv.watermark is None and inv.watermark_raw == "yesterday" and inv.lag_seconds is None


def test_last_reconciliation_and_sizing_with_their_report_files(filled, families, tmp_path):
    root = ObjectStoragePath(f"file://{tmp_path}/reports")
    chart = root / report_path("sizing", "size__1", "chart.png")
    chart.parent.mkdir(parents=True, exist_ok=True)
    chart.write_bytes(b"\x89PNG")
    snap = build_snapshot(families, filled, {}, NOW, reports_root=root, sizing_runs=["size__1", "size__0"])

    rec = snap.reconciliation
    assert rec.run_id == "rec__new" and rec.differences == 1 and rec.report is None  # no report.html written
    assert [(r.family, r.object, r.zuora_count, r.target_count, r.missing) for r in rec.rows] == [
        (FAMILY, OBJECT, 50, 49, 1)]  # fmt: skip
    assert snap.sizing.run_id == "size__1"
    assert (snap.sizing.tables, snap.sizing.months, snap.sizing.records) == (2, 2, 15)
    assert snap.sizing.chart == "sizing/size__1/chart.png" and snap.sizing.report is None
    # The sizing DAG's newest run decides, not the run ids' order.
    assert build_snapshot(families, filled, {}, NOW, sizing_runs=["size__0"]).sizing.records == 1


def test_a_fresh_state_database_reads_empty_and_creates_nothing(families, tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path}/empty.db")
    snap = build_snapshot(families, engine, {}, NOW)
    assert snap.reconciliation is None and snap.sizing is None
    assert all(o.runs == [] and o.open_dead_letters == 0 for f in snap.families for o in f.objects)
    assert sa.inspect(engine).get_table_names() == []


def test_the_page_shows_the_snapshot_escaped_with_links_to_dags_and_runs(filled, families):
    marks = {f"zuora_hwm__{FAMILY}__{OBJECT}": "2026-12-02T10:30:00+00:00"}
    snap = build_snapshot(families, filled, marks, NOW)
    html = render(snap, user="<admin>", prefix="/zuora-sync", ui_base="", can_replay=True)
    assert "2026-12-02 10:30:00" in html and "1 h 30 min" in html
    assert 'href="/dags/zuora_crm_invoices/runs/manual__3"' in html
    assert 'href="/dags/zuora_crm_invoices"' in html
    assert 'class="replay" data-family="crm_invoices" data-object="invoices"' in html
    assert "&lt;admin&gt;" in html and "<admin>" not in html
    assert render(snap, user="u", prefix="/zuora-sync").count('class="replay"') == 0  # no permission: no button


def test_format_lag_and_run_folder():
    assert [format_lag(s) for s in (None, 5, 125, 3 * 3600 + 5 * 60, 2 * 86400 + 4 * 3600)] == [
        "-", "5 s", "2 min", "3 h 05 min", "2 d 04 h"]  # fmt: skip
    assert run_folder("manual__2026-12-02T10:00:00+00:00") == "manual__2026-12-02T10_00_00+00_00"
