"""Run notes tell backfills, dry runs and replays from plain syncs in the run list."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from zuora_etl.run_labels import label_for, run_labels


@pytest.mark.parametrize(
    ("dag_id", "run_type", "conf", "label"),
    [
        ("zuora_erp_invoices", "scheduled", {}, None),
        ("zuora_erp_invoices", "manual", {"start": None, "end": None, "dry_run": False}, None),
        ("zuora_erp_invoices", "manual", {"start": "2026-06-01", "end": "2026-07-01"},
         "Backfill 2026-06-01 → 2026-07-01 (params; watermarks stay)"),
        ("zuora_erp_invoices", "manual", {"start": "2026-06-01", "dry_run": True},
         "Dry run: Backfill 2026-06-01 → now (params; watermarks stay)"),
        ("zuora_erp_invoices", "backfill", {}, "Airflow backfill (watermarks stay)"),
        ("zuora_crm_accounts", "manual", {"dry_run": True}, "Dry run (nothing written)"),
        ("zuora_replay", "manual", {"family": "erp_invoices", "object": "invoices", "ids": ["a", "b"]},
         "Replay of 2 ids: invoices of erp_invoices"),
        ("zuora_replay", "manual", {"family": "crm_invoices", "object": "invoices", "dead_letters": True},
         "Replay of open dead letters: invoices of crm_invoices"),
        ("someone_elses_dag", "manual", {"start": "2026-06-01"}, None),
    ],
)  # fmt: skip
def test_label_for(dag_id, run_type, conf, label):
    assert label_for(dag_id, run_type, conf) == label


def test_the_listener_sets_the_note_once_and_keeps_a_human_one():
    run = SimpleNamespace(dag_id="zuora_erp_invoices", run_type="backfill", conf={}, note=None)
    run_labels.on_dag_run_running(dag_run=run, msg="started")
    assert run.note == "Airflow backfill (watermarks stay)"
    run = SimpleNamespace(dag_id="zuora_erp_invoices", run_type="backfill", conf={}, note="re-run for audit")
    run_labels.on_dag_run_running(dag_run=run, msg="started")
    assert run.note == "re-run for audit"


def test_the_plugin_registers_the_listener():
    import zuora_run_labels

    assert run_labels in zuora_run_labels.ZuoraRunLabelsPlugin.listeners
