"""What every DAG of the project shares: retries that back off for real, the failure alert on every
task, and the deadline alert of a run far past its usual duration."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from .alerts import run_deadline, task_failure_alert
from .settings import MAX_RETRY_DELAY, RETRY_BACKOFF


def default_args(owner: str, retries: int, retry_delay: timedelta) -> dict[str, Any]:
    """A DAG's `default_args`: `retry_delay` is the first wait, each next one RETRY_BACKOFF times
    longer up to MAX_RETRY_DELAY. (Airflow 3.3 reads `retry_exponential_backoff` as a multiplier:
    `True` is 1.0, a constant delay.) A task that fails for good (retries spent, or a failure no retry
    can fix) sends one alert to every configured channel."""
    return {
        "owner": owner,
        "retries": retries,
        "retry_delay": retry_delay,
        "retry_exponential_backoff": RETRY_BACKOFF,
        "max_retry_delay": MAX_RETRY_DELAY,
        "on_failure_callback": task_failure_alert,
    }


def deadline_alerts(dag_id: str) -> list:
    """The DAG's `deadline=`: alerts when a run is far past its usual duration."""
    return run_deadline(dag_id)


__all__ = ["deadline_alerts", "default_args"]
