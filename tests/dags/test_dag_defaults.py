"""What every DAG of the project shares (dag_defaults.py): a failure alert on every task, retries
that really back off, and descriptions that read in full in the UI."""

from __future__ import annotations

import os
import uuid
from datetime import UTC, datetime, timedelta

import pytest

PROJECT_DAGS = [
    "zuora_crm_accounts", "zuora_crm_subscriptions", "zuora_crm_orders", "zuora_crm_invoices", "zuora_erp_invoices",
    "zuora_erp_payments", "zuora_erp_memos", "zuora_replay", "zuora_reconciliation", "zuora_sizing", "zuora_preflight",
    "zuora_watch",
]  # fmt: skip


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


@pytest.mark.parametrize("dag_id", PROJECT_DAGS)
def test_every_task_alerts_on_final_failure_and_backs_off(bag, dag_id):
    from zuora_etl.alerts import task_failure_alert

    dag = bag.dags[dag_id]
    for task in dag.tasks:
        assert task_failure_alert in (task.on_failure_callback or []), task.task_id
        assert task.retry_exponential_backoff == 2.0 and task.max_retry_delay == timedelta(hours=1), task.task_id


def test_retry_delays_grow_exponentially_up_to_the_cap(bag):
    """Airflow's own computation (3.3 reads `retry_exponential_backoff` as a multiplier; True meant a
    constant delay): each wait lies between base*2^(n-1) and twice that, and never passes an hour."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.serialization.serialized_objects import DagSerialization

    dag = DagSerialization.from_dict(DagSerialization.to_dict(bag.dags["zuora_erp_invoices"]))
    task = dag.get_task("invoices.load")
    delays = []
    for try_number in range(1, 6):
        ti = TaskInstance(task, run_id="r", dag_version_id=uuid.uuid4())
        ti.try_number, ti.end_date = try_number, datetime(2026, 1, 1, tzinfo=UTC)
        delays.append(ti.next_retry_datetime() - ti.end_date)
    base = task.retry_delay
    for n, delay in enumerate(delays[:4]):
        assert base * 2**n <= delay < base * 2 ** (n + 1), (n, delay)
    assert delays[4] == timedelta(hours=1)


@pytest.mark.parametrize("dag_id", PROJECT_DAGS)
def test_descriptions_are_whole_sentences(bag, dag_id):
    dag = bag.dags[dag_id]
    assert dag.description and len(dag.description) > 40 and "\n" not in dag.description
    assert dag.doc_md and len(dag.doc_md) > 200


@pytest.mark.parametrize("family", ["erp_invoices", "erp_memos", "crm_subscriptions"])
def test_a_sync_dag_shows_its_family_description_in_full(bag, family):
    from zuora_etl.families import get_family

    fam = get_family(family)
    dag = bag.dags[fam.dag_id]
    assert dag.description == " ".join(fam.description.split())
    assert dag.description.endswith("."), "not cut mid-sentence"
    for o in fam.objects:
        assert f"| `{o.name}` |" in dag.doc_md
