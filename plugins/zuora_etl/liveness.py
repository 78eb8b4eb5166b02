"""Whether another run is still running, asked of Airflow's API server through the task SDK: a
sync, a backfill and a replay of one family may run side by side, and one must not settle, or take
over, what another is still doing."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

LIVE_STATES = frozenset({"running", "queued"})


def run_alive(ti: Any, dag_ids: Iterable[str], own_run_id: str) -> Callable[[str], bool]:
    """A predicate over run ids: True for a run of one of `dag_ids` that is queued or running.
    The task's own run counts as dead (its pending rows are an earlier try's); a run Airflow
    does not know (deleted, another DAG) counts as dead too."""
    candidates = tuple(dict.fromkeys(dag_ids))

    @cache
    def alive(run_id: str) -> bool:
        if run_id == own_run_id:
            return False
        for dag_id in candidates:
            try:
                state = ti.get_dagrun_state(dag_id=dag_id, run_id=run_id)
            except Exception:
                continue
            return str(getattr(state, "value", state)) in LIVE_STATES
        return False

    return alive
