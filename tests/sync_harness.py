"""Running sync DAGs for real (dag.test) against an emulator, and comparing sinks with Zuora."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from zuora_etl.db import dispose_engines
from zuora_etl.families import get_family
from zuora_etl.windows import hwm_variable

from include.zuora_emulator import Emulator
from scripts.local_env import local_connections
from scripts.verify import compare_family

_bag = None


def dagbag():
    global _bag
    if _bag is None:
        from airflow.dag_processing.dagbag import DagBag

        _bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
        assert not _bag.import_errors, _bag.import_errors
    return _bag


def clear_airflow_state() -> None:
    """Watermarks live in the session's Airflow DB; every test starts without any."""
    from airflow.models import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        session.query(Variable).filter(Variable.key.like("zuora_hwm__%")).delete(synchronize_session=False)


def get_variable(name: str) -> str | None:
    from airflow.models import Variable

    return Variable.get(name, default_var=None)


class SyncEnv:
    def __init__(self, emu: Emulator, data_dir: Path, monkeypatch, zuora_extra: dict | None = None) -> None:
        self.emu, self.data_dir = emu, data_dir
        env = local_connections(emu.base_url, data_dir, {"backoff_seconds": 0.05, **(zuora_extra or {})})
        env["AIRFLOW_VAR_ZUORA_ETL_SETTLE_SECONDS"] = "0"
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        dispose_engines()
        clear_airflow_state()

    def use_sink(self, monkeypatch, conn_id: str, conn_json: str) -> None:
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", conn_json)
        dispose_engines()

    def run(self, dag_id: str, conf: dict | None = None, defaults: bool = True) -> str:
        """Run a DAG with dag.test(); `defaults` fills a sync DAG's params (start, end, dry_run)."""
        dag = dagbag().dags[dag_id]
        retries = {task.task_id: task.retries for task in dag.tasks}
        for task in dag.tasks:
            task.retries = 0  # a failure must show now, not after a 5-minute retry delay
        try:
            # Every param is given: dag.test() keeps the conf of an earlier run on the cached DAG.
            base = {"start": None, "end": None, "dry_run": False, "slices": None, "bulk": "auto"} if defaults else {}
            run = dag.test(run_conf={**base, **(conf or {})})
        finally:
            for task in dag.tasks:
                task.retries = retries[task.task_id]
        return str(getattr(run.state, "value", run.state))

    def engine(self, conn_id: str) -> sa.Engine:
        from zuora_etl.db import engine_for

        return engine_for(conn_id)

    def watermark(self, family: str, obj: str) -> str | None:
        return get_variable(hwm_variable(family, obj))


def assert_family_matches(env: SyncEnv, family_name: str) -> dict[str, int]:
    """Every object of the family: the target equals Zuora under the family's filters."""
    counts = {}
    for c in compare_family(env.emu, get_family(family_name)):
        assert not c.missing and not c.extra, (
            f"{family_name}.{c.object}: {len(c.missing)} missing, {len(c.extra)} extra"
        )
        assert not c.differing, f"{family_name}.{c.object}: {len(c.differing)} differ, e.g. {c.differing[0]}"
        counts[c.object] = c.zuora
    return counts
