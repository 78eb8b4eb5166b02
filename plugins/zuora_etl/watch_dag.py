"""The watch DAG: threshold alerts that no failing task raises (see alerts/thresholds.py).

One task, `check`, every 15 minutes: read the open dead letters per object (state DB), every
family's watermarks (Variables) and the end of each object's last completely read sync window
(`zuora_etl_runs`), find the conditions above their thresholds, and send those that started or are
due for a reminder to every alert channel; `zuora_etl_alerts` remembers what was sent.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypedDict

import sqlalchemy as sa
from airflow.sdk import DAG, Variable, get_current_context, task
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from .alerts.channels import SENT, send
from .alerts.messages import task_log_url
from .alerts.sent import SentAlerts
from .alerts.thresholds import (
    Condition,
    condition_alert,
    dead_letter_conditions,
    due,
    ended,
    watermark_lag_conditions,
)
from .dag_defaults import deadline_alerts, default_args
from .families import Family, usable_families
from .settings import (
    ALERT_DEAD_LETTERS_THRESHOLD,
    ALERT_DEAD_LETTERS_VARIABLE,
    ALERT_REALERT_INTERVAL,
    ALERT_REALERT_VARIABLE,
    ALERT_WATERMARK_LAG,
    ALERT_WATERMARK_LAG_VARIABLE,
    WATCH_DAG_ID,
    WATCH_SCHEDULE,
)
from .state import StateStore, dead_letters, runs
from .windows import hwm_variable, parse_instant

log = logging.getLogger(__name__)
DAG_ID = WATCH_DAG_ID
START_DATE = datetime(2025, 1, 1, tzinfo=UTC)


class WatchResult(TypedDict):
    conditions: list[str]
    sent: list[str]
    ended: list[str]


def _whole(name: str, default: int) -> int:
    raw = Variable.get(name, default=None)
    try:
        value = int(raw) if raw not in (None, "") else default
    except ValueError:
        value = -1
    if value < 0:
        raise AirflowFailException(f"Variable {name} must be a whole number of at least 0, not {raw!r}")
    return value


def thresholds() -> tuple[int, timedelta, timedelta]:
    """(dead letters, watermark lag, re-alert interval) from their Variables or defaults."""
    letters = _whole(ALERT_DEAD_LETTERS_VARIABLE, ALERT_DEAD_LETTERS_THRESHOLD)
    lag = _whole(ALERT_WATERMARK_LAG_VARIABLE, int(ALERT_WATERMARK_LAG.total_seconds() // 60))
    realert = _whole(ALERT_REALERT_VARIABLE, int(ALERT_REALERT_INTERVAL.total_seconds() // 60))
    return letters, timedelta(minutes=lag), timedelta(minutes=realert)


def open_dead_letter_counts(engine: sa.Engine) -> dict[tuple[str, str, str], int]:
    """Open dead letters per (family, object, stage)."""
    query = (
        sa.select(dead_letters.c.family, dead_letters.c.object, dead_letters.c.stage, sa.func.count())
        .where(dead_letters.c.resolved_at.is_(None))
        .group_by(dead_letters.c.family, dead_letters.c.object, dead_letters.c.stage)
    )
    with engine.connect() as conn:
        return {(f, o, s): n for f, o, s, n in conn.execute(query).tuples()}


def last_read(engine: sa.Engine) -> dict[tuple[str, str], datetime]:
    """Per (family, object): the end of the last window a sync read completely (aware UTC)."""
    query = (
        sa.select(runs.c.family, runs.c.object, sa.func.max(runs.c.window_hi))
        .where((runs.c.mode == "sync") & runs.c.status.in_(["success", "partial"]) & runs.c.window_hi.is_not(None))
        .group_by(runs.c.family, runs.c.object)
    )
    with engine.connect() as conn:
        return {(f, o): hi.replace(tzinfo=UTC) for f, o, hi in conn.execute(query).tuples() if hi}


def watermarks(
    families: list[Family], read_variable: Callable[[str], str | None], reads: dict[tuple[str, str], datetime]
) -> dict[tuple[str, str], tuple[datetime | None, datetime | None]]:
    """Per scheduled family and windowed object (items read through their parents have none)."""
    marks = {}
    for family in families:
        if not family.schedule:
            continue  # run by hand only: nothing says how current it should be
        for o in family.objects:
            if o.parent:
                continue
            raw = read_variable(hwm_variable(family.family, o.name))
            marks[(family.family, o.name)] = (parse_instant(raw) if raw else None, reads.get((family.family, o.name)))
    return marks


def check(
    now: datetime,
    dag_id: str,
    run_id: str,
    link: str,
    families: list[Family],
    read_variable: Callable[[str], str | None],
    state: StateStore | None = None,
    memory: SentAlerts | None = None,
    sender: Callable[..., dict[str, str]] = send,
) -> WatchResult:
    """Find the conditions, send the due ones, remember them; forget those that ended."""
    state = state or StateStore()
    memory = memory or SentAlerts(engine=state.engine)
    letters, lag, realert = thresholds()
    conditions: list[Condition] = [
        *dead_letter_conditions(open_dead_letter_counts(state.engine), letters),
        *watermark_lag_conditions(watermarks(families, read_variable, last_read(state.engine)), now, lag),
    ]
    sent = memory.sent()
    result: WatchResult = {"conditions": [c.key for c in conditions], "sent": [], "ended": ended(conditions, sent)}
    memory.forget(result["ended"])
    for key in result["ended"]:
        log.info("Ended: %s", key)
    failures = []
    for condition in due(conditions, sent, now, realert):
        outcome = sender(condition_alert(condition, dag_id, run_id, link))
        missed = {k: v for k, v in outcome.items() if v != SENT}
        if missed:
            failures.append(f"{condition.key}: {missed}")
        if not missed or len(missed) < len(outcome):  # some channel has it (or none is configured)
            memory.record(condition, now)
            result["sent"].append(condition.key)
    for condition in conditions:
        when = "sent now" if condition.key in result["sent"] else "sent before"
        log.info("%s: %s (%s)", condition.key, condition.detail, when)
    if not conditions:
        log.info("All well: no dead-letter backlog above %d, no watermark behind more than %s", letters, lag)
    if failures:
        # Retried: a channel that was down gets the alerts of the next check.
        raise AirflowException(f"alerts not delivered to every channel: {'; '.join(failures)}")
    return result


def build_watch_dag(doc: str | None = None) -> DAG:
    with DAG(
        dag_id=DAG_ID,
        description="Alerts on dead-letter backlogs and lagging watermarks",
        doc_md=doc,
        schedule=WATCH_SCHEDULE,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=["zuora", "alerts"],
        # One retry a few minutes later: a state database or an alert channel briefly down.
        default_args=default_args("data-integration", 1, timedelta(minutes=3)),
        deadline=deadline_alerts(DAG_ID),
    ) as dag:
        check_task()
    return dag


@task(task_id="check")
def check_task() -> WatchResult:
    """Dead-letter backlogs and watermark lags against their thresholds; alert what is due."""
    ctx: Any = get_current_context()
    families, broken = usable_families()
    for name, why in broken.items():
        log.warning("Family file %s not watched: %s", name, why[:300])
    return check(
        datetime.now(UTC),
        ctx["dag"].dag_id,
        ctx["run_id"],
        task_log_url(ctx["ti"]),
        families,
        lambda name: Variable.get(name, default=None),
    )


__all__ = ["DAG_ID", "build_watch_dag", "check"]
