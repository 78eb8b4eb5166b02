"""Alerts: a failed task's message to every configured channel, run deadlines, threshold alerts.

- `task_failure_alert`: every task's `on_failure_callback` (dag_defaults.py). The Task SDK runs it
  only when the task fails for good (retries spent, or `AirflowFailException`); a try that will be
  retried runs `on_retry_callback` instead, so one failure sends one alert per channel.
- `run_deadline`: every DAG's `deadline=` (deadline.py).
- channels.py: which channels are on and the notifiers; messages.py: what a message says, masked;
  thresholds.py: the watch DAG's conditions (watch_dag.py).
"""

from __future__ import annotations

import logging
from typing import Any

from .channels import send
from .deadline import run_deadline, run_overdue
from .messages import Alert, failure_alert

log = logging.getLogger(__name__)


def task_failure_alert(context: Any) -> None:
    """on_failure_callback of every task of the project (see dag_defaults.py): one message to each
    configured channel. Never raises: the task has failed already, the alert must not hide why."""
    try:
        send(failure_alert(context), context)
    except Exception:
        log.exception("Could not build or send the failure alert")


__all__ = ["Alert", "run_deadline", "run_overdue", "send", "task_failure_alert"]
