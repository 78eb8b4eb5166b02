"""Every DAG of the project carries the run deadline; it survives serialization (what the scheduler
reads); its callback sends the overdue-run alert."""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from airflow.serialization.decoders import decode_deadline_alert
from airflow.serialization.serialized_objects import DagSerialization
from zuora_etl.alerts import deadline as deadline_module
from zuora_etl.alerts import run_deadline
from zuora_etl.settings import RUN_DEADLINE_MARGIN, RUN_DEADLINE_MIN_RUNS, RUN_DEADLINE_RUNS

CALLBACK = "zuora_etl.alerts.deadline.run_overdue"
ALL_DAGS = ["zuora_crm_accounts", "zuora_crm_subscriptions", "zuora_crm_orders", "zuora_crm_invoices",
            "zuora_erp_invoices", "zuora_erp_payments", "zuora_erp_memos", "zuora_replay",
            "zuora_reconciliation", "zuora_sizing", "zuora_preflight", "zuora_watch"]  # fmt: skip


@pytest.fixture(scope="module")
def bag():
    from airflow.dag_processing.dagbag import DagBag

    found = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    assert not found.import_errors, found.import_errors
    return found


def test_run_deadline_is_the_average_runtime_plus_the_margin():
    (alert,) = run_deadline("zuora_crm_accounts")
    assert type(alert.reference).__name__ == "AverageRuntimeDeadline"
    assert (alert.reference.max_runs, alert.reference.min_runs) == (RUN_DEADLINE_RUNS, RUN_DEADLINE_MIN_RUNS)
    assert alert.interval == RUN_DEADLINE_MARGIN
    assert type(alert.callback).__name__ == "AsyncCallback"
    assert alert.callback.path == CALLBACK and alert.callback.kwargs == {"dag_id": "zuora_crm_accounts"}


@pytest.mark.parametrize("dag_id", ALL_DAGS)
def test_every_dag_has_the_deadline_and_it_survives_serialization(bag, dag_id):
    dag = bag.dags[dag_id]
    assert [a.callback.path for a in dag.deadline] == [CALLBACK]
    assert dag.deadline[0].callback.kwargs == {"dag_id": dag_id}
    back = DagSerialization.from_dict(DagSerialization.to_dict(dag))
    (decoded,) = [decode_deadline_alert(d) for d in back.deadline]
    assert decoded.callback.path == CALLBACK and decoded.callback.kwargs == {"dag_id": dag_id}
    assert decoded.interval == RUN_DEADLINE_MARGIN
    assert type(decoded.reference).__name__ == "AverageRuntimeDeadline"


def test_every_task_alerts_on_failure(bag):
    from zuora_etl.alerts import task_failure_alert

    for dag_id in ALL_DAGS:
        for task in bag.dags[dag_id].tasks:
            assert task_failure_alert in task.on_failure_callback, f"{dag_id}.{task.task_id}"


def test_the_callback_sends_the_overdue_alert(monkeypatch):
    sent = []
    monkeypatch.setattr(deadline_module, "send", lambda alert: sent.append(alert) or {"zuora_alerts_webhook": "sent"})
    context = {"dag_run": {"dag_run_id": "scheduled__2026-01-01T00:00:00+00:00", "start_date": "2026-01-01T00:00:03Z",
                           "state": "running"},
               "deadline": {"id": "d1", "deadline_time": "2026-01-01T00:45:00Z"}}  # fmt: skip
    # In a thread of its own, as the triggerer runs it: no event loop of another test can be running there.
    overdue = deadline_module.run_overdue(dag_id="zuora_erp_payments", context=context)
    with ThreadPoolExecutor(1) as worker:
        result = worker.submit(asyncio.run, overdue).result()
    assert result == {"zuora_alerts_webhook": "sent"}
    (alert,) = sent
    assert alert.kind == "run_overdue"
    assert alert.fields["dag"] == "zuora_erp_payments" and alert.fields["run"].startswith("scheduled__2026-01-01")
    assert alert.fields["deadline"] == "2026-01-01T00:45:00Z"


def test_dag_test_compat_reads_an_encoded_alert_and_still_looks_up_ids(bag):
    """dag.test() hands DeadlineAlert.get_by_id the encoded alerts (Airflow 3.3); see alerts/compat.py."""
    import uuid

    from airflow.models.deadline_alert import DeadlineAlert as DeadlineAlertModel
    from airflow.serialization.definitions.deadline import SerializedReferenceModels
    from sqlalchemy.exc import NoResultFound
    from zuora_etl.alerts.compat import accept_encoded_deadline_alerts

    assert accept_encoded_deadline_alerts()
    encoded = DagSerialization.from_dict(DagSerialization.to_dict(bag.dags["zuora_sizing"])).deadline[0]
    row = DeadlineAlertModel.get_by_id(encoded)
    assert row.reference_class in SerializedReferenceModels.TYPES.DAGRUN
    assert row.callback_def["__data__"]["path"] == CALLBACK
    with pytest.raises(NoResultFound):
        DeadlineAlertModel.get_by_id(str(uuid.uuid4()))
