"""Every DAG imports, and carries what operators of this project rely on."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="module")
def bag():
    """A DagBag of its own: what the scheduler would parse, untouched by other tests' runs."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


SYNC_DAGS = ["zuora_crm_accounts", "zuora_crm_subscriptions", "zuora_crm_orders", "zuora_crm_invoices",
             "zuora_erp_invoices", "zuora_erp_payments", "zuora_erp_memos"]  # fmt: skip


def test_dags_import_without_errors(bag):
    assert bag.import_errors == {}
    assert set(SYNC_DAGS) <= set(bag.dag_ids)


@pytest.mark.parametrize("dag_id", SYNC_DAGS)
def test_sync_dag_shape(bag, dag_id):
    dag = bag.dags[dag_id]
    assert dag.tags and "zuora" in dag.tags
    assert dag.doc_md and dag_id in dag.doc_md
    assert dag.max_active_runs == 1 and dag.catchup is False
    assert {"start", "end", "dry_run"} <= set(dag.params.keys())
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable", "backfills need real data intervals"
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
        assert task.owner and task.owner != "airflow", task.task_id
    extracts = [t for t in dag.tasks if t.task_id.endswith(".extract")]
    assert extracts and all(t.pool == "zuora_api" for t in extracts)
    assert {"plan", "advance", "summarize"} <= set(dag.task_ids)
    assert dag.get_task("summarize").trigger_rule == "all_done"


@pytest.mark.parametrize("dag_id", ["zuora_erp_invoices", "zuora_erp_payments", "zuora_erp_memos"])
def test_erp_dags_mark_before_advancing(bag, dag_id):
    dag = bag.dags[dag_id]
    marks = [t for t in dag.tasks if t.task_id.endswith(".mark")]
    assert marks
    advance = dag.get_task("advance")
    assert {m.task_id for m in marks} <= advance.upstream_task_ids


def test_crm_dags_do_not_mark(bag):
    for dag_id in SYNC_DAGS[:4]:
        assert not [t for t in bag.dags[dag_id].tasks if t.task_id.endswith(".mark")]
