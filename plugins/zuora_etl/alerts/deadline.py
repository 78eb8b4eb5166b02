"""A run far past its usual duration: Airflow's deadline alerts.

Each DAG gets one `DeadlineAlert`: reference `AVERAGE_RUNTIME` (the mean duration of its last
RUN_DEADLINE_RUNS finished runs, evaluated when a run is created; with fewer than
RUN_DEADLINE_MIN_RUNS finished runs there is no deadline yet) plus RUN_DEADLINE_MARGIN. When the
scheduler finds a run still going past that time it queues the callback, an `AsyncCallback` run in
the triggerer: `run_overdue(dag_id, context)`, where `context` is what the scheduler sends
(`dag_run`: the run as the REST API shows it, `deadline`: its id and time). The callback is
serialized by its import path and kwargs only, so the DAG serializes like any other.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineAlert, DeadlineReference

from ..settings import RUN_DEADLINE_MARGIN, RUN_DEADLINE_MIN_RUNS, RUN_DEADLINE_RUNS
from .channels import send
from .compat import accept_encoded_deadline_alerts
from .messages import overdue_alert

log = logging.getLogger(__name__)


def run_deadline(dag_id: str) -> list[DeadlineAlert]:
    """The DAG's deadline alerts (its `deadline=`)."""
    accept_encoded_deadline_alerts()  # dag.test() of a DAG with a deadline, Airflow 3.3: see compat.py
    return [
        DeadlineAlert(
            reference=DeadlineReference.AVERAGE_RUNTIME(max_runs=RUN_DEADLINE_RUNS, min_runs=RUN_DEADLINE_MIN_RUNS),
            interval=RUN_DEADLINE_MARGIN,
            callback=AsyncCallback(run_overdue, kwargs={"dag_id": dag_id}),
            name="far past its usual duration",
        )
    ]


async def run_overdue(dag_id: str, context: Mapping[str, Any] | None = None) -> dict[str, str]:
    """Deadline callback (triggerer): send the overdue-run alert to every channel. Connections are
    read and notifiers called in a worker thread: they are synchronous, the triggerer is not."""
    from asgiref.sync import sync_to_async

    context = context or {}
    alert = overdue_alert(dag_id, context.get("dag_run") or {}, (context.get("deadline") or {}).get("deadline_time"))
    return await sync_to_async(send)(alert)


__all__ = ["run_deadline", "run_overdue"]
