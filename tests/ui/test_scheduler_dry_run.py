"""A dry run of `zuora_crm_accounts` through the real scheduler and LocalExecutor of a standalone
Airflow (not `dag.test()`): triggered over the REST API with conf {"dry_run": true}, it must end
`success` with every task done, finish only after every load, and leave the DAG free to run
again (its single run slot released, nothing left queued or running, the pool empty)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime
from pathlib import Path

from zuora_etl.settings import SYNC_MAX_ACTIVE_RUNS

DAG_ID = "zuora_crm_accounts"
ACTIVE_RUN_STATES = ("queued", "running")


def _target_rows(db: Path) -> dict[str, int]:
    """Rows per target table in a SQLite target (the sink's own zuora_etl_* tables aside)."""
    if not db.exists():
        return {}
    with closing(sqlite3.connect(db)) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        counts = {t: conn.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
    return {t: n for t, n in counts.items() if n and not t.startswith("zuora_etl_")}


def _when(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def test_scheduler_dry_run_of_crm_accounts_succeeds_and_frees_the_dag(airflow_ui, poll):
    api = airflow_ui.api
    api.patch(f"dags/{DAG_ID}", {"is_paused": False})
    try:
        run = api.post(f"dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {"dry_run": True}})
        run_id = run["dag_run_id"]
        assert run["conf"] == {"dry_run": True}

        final = airflow_ui.wait_for_run(DAG_ID, run_id, timeout=240)
        tis = airflow_ui.task_instances(DAG_ID, run_id)
        states = airflow_ui.task_states(DAG_ID, run_id)
        assert final["state"] == "success", f"dry run ended {final['state']}; tasks: {states}"

        # Every task finished: succeeded, or skipped because a dry run loads nothing.
        unfinished = {k: s for k, s in states.items() if s not in ("success", "skipped")}
        assert not unfinished, f"tasks not done: {unfinished}; all: {states}"
        by_id: dict[str, list[dict]] = {}
        for ti in tis:
            by_id.setdefault(ti["task_id"], []).append(ti)
        for task_id in ("plan", "finish"):
            assert {ti["state"] for ti in by_id[task_id]} == {"success"}, states
        extracts = [ti for t, group in by_id.items() if t.split(".")[-1].startswith("extract") for ti in group]
        loads = [ti for t, group in by_id.items() if t.split(".")[-1] == "load" for ti in group]
        assert extracts and loads, f"no extract/load tasks in {sorted(states)}"
        assert all(ti["state"] == "success" for ti in extracts + loads), states  # a dry run's load compares

        # A dry run writes nothing to the target and moves no watermark.
        assert not _target_rows(airflow_ui.data_dir / "crm.db"), "a dry run wrote rows to the CRM target"
        for obj in ("accounts", "contacts"):
            resp = api.request("GET", f"variables/zuora_hwm__crm_accounts__{obj}")
            assert resp.status_code == 404, f"a dry run moved the {obj} watermark: {resp.text[:200]}"

        # finish reports on the loads: it may start only after every one of them ended.
        finish_start = _when(by_id["finish"][0]["start_date"])
        last_load = max(_when(ti["end_date"]) for ti in loads)
        assert finish_start >= last_load, f"finish started {finish_start} before the last load ended {last_load}"

        # Not stuck: no run of the DAG queued or running (its run slots are free), no
        # task instance left behind, and the API pool holds no slot.
        active = poll(
            lambda: not any(r["state"] in ACTIVE_RUN_STATES for r in api.get(f"dags/{DAG_ID}/dagRuns")["dag_runs"]),
            timeout=30, what=f"{DAG_ID} to have no queued or running run",
        )  # fmt: skip
        assert active
        pool = api.get("pools/zuora_api")
        assert pool["running_slots"] == 0 and pool["queued_slots"] == 0, pool
        details = api.get(f"dags/{DAG_ID}/details")
        assert details["max_active_runs"] == SYNC_MAX_ACTIVE_RUNS
    finally:
        api.patch(f"dags/{DAG_ID}", {"is_paused": True})
