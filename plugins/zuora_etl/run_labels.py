"""Run labels: a note on each run that is not a plain sync, so the run list tells a backfill, a dry
run or a replay from a scheduled sync at a glance (in Airflow they are all "manual" runs).

A DAG-run listener sets the note when the scheduler starts the run (Airflow's task SDK cannot set
a run's note from a task); a note someone already wrote is never replaced.
"""

from __future__ import annotations

from typing import Any

from airflow.listeners import hookimpl

SYNC_PREFIX, REPLAY_DAG = "zuora_", "zuora_replay"


def label_for(dag_id: str, run_type: str, conf: dict | None) -> str | None:
    """The note for a run of this project's DAGs, or None for a plain sync (and other DAGs)."""
    if not dag_id.startswith(SYNC_PREFIX):
        return None
    conf = conf or {}
    dry = "Dry run: " if conf.get("dry_run") else ""
    if dag_id == REPLAY_DAG:
        ids = conf.get("ids") or []
        count = len(ids) if isinstance(ids, list) else len(str(ids).replace(",", " ").split())
        asked = [f"{count} ids"] if count else []
        if conf.get("dead_letters"):
            asked.append("open dead letters")
        what = " and ".join(asked)
        return f"{dry}Replay of {what or 'nothing'}: {conf.get('object', '?')} of {conf.get('family', '?')}"
    if conf.get("start"):
        return f"{dry}Backfill {conf['start']} → {conf.get('end') or 'now'} (params; watermarks stay)"
    if run_type == "backfill":
        return f"{dry}Airflow backfill (watermarks stay)"
    return "Dry run (nothing written)" if dry else None


class RunLabels:
    @hookimpl
    def on_dag_run_running(self, dag_run: Any, msg: str) -> None:
        run_type = str(getattr(dag_run.run_type, "value", dag_run.run_type))
        label = label_for(dag_run.dag_id, run_type, dag_run.conf)
        if label and not dag_run.note:
            dag_run.note = label


run_labels = RunLabels()
