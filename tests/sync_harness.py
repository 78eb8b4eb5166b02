"""Running sync DAGs for real (dag.test) against an emulator, and comparing sinks with Zuora."""

from __future__ import annotations

import os
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from zuora_etl.catalog import get_object
from zuora_etl.db import dispose_engines
from zuora_etl.families import Family, get_family
from zuora_etl.mapping import apply_mapping, cached_mapping
from zuora_etl.sinks.base import records
from zuora_etl.sinks.sql import table_for
from zuora_etl.staging import as_text
from zuora_etl.windows import hwm_variable

from include.zuora_emulator import Emulator
from include.zuora_emulator.schema import OBJECTS as EMULATED
from scripts.local_env import local_connections

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

    def run(self, dag_id: str, conf: dict | None = None) -> str:
        dag = dagbag().dags[dag_id]
        for task in dag.tasks:
            task.retries = 0  # a failure must show now, not after a 5-minute retry delay
        # Every param is given: dag.test() keeps the conf of an earlier run on the cached DAG.
        run = dag.test(run_conf={"start": None, "end": None, "dry_run": False, **(conf or {})})
        return str(getattr(run.state, "value", run.state))

    def engine(self, conn_id: str) -> sa.Engine:
        from zuora_etl.db import engine_for

        return engine_for(conn_id)

    def watermark(self, family: str, obj: str) -> str | None:
        return get_variable(hwm_variable(family, obj))


def _norm(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) or hasattr(value, "as_tuple"):
        return round(float(value), 6)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def expected_rows(emu: Emulator, family: Family, obj_name: str) -> dict[str, dict]:
    """What the family's sink table must hold: Zuora's records under the family's filters, mapped."""
    fobj = family.get(obj_name)
    endpoint = get_object(obj_name).endpoint
    store = emu.store
    spec = EMULATED[endpoint]
    if fobj.parent:
        parents = expected_rows(emu, family, fobj.parent.object)
        truth = [r for r in store.truth(endpoint) if r.get(fobj.parent.key) in parents]
    else:
        truth = store.truth(endpoint, [store.parse_filter(spec, f) for f in fobj.filters])
    mapping = cached_mapping(fobj.mapping_name)
    raw = pd.DataFrame([{k: as_text(v) for k, v in r.items()} for r in truth], columns=list(spec.types))
    good, bad = apply_mapping(mapping, raw)
    assert bad.empty, bad.to_dict("records")
    return {r[mapping.key]: {k: _norm(v) for k, v in r.items()} for r in records(good)}


def sink_rows(engine: sa.Engine, mapping_name: str) -> dict[str, dict]:
    mapping = cached_mapping(mapping_name)
    table = table_for(mapping, sa.MetaData())
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table)).mappings().all()
    return {r[mapping.key]: {k: _norm(v) for k, v in r.items()} for r in rows}


def assert_family_matches(env: SyncEnv, family_name: str) -> dict[str, int]:
    family = get_family(family_name)
    engine = env.engine(family.sink)
    counts = {}
    for o in family.objects:
        want = expected_rows(env.emu, family, o.name)
        got = sink_rows(engine, o.mapping_name)
        missing, extra = set(want) - set(got), set(got) - set(want)
        assert not missing and not extra, f"{family_name}.{o.name}: {len(missing)} missing, {len(extra)} extra"
        diffs = [k for k in want if want[k] != got[k]]
        assert not diffs, f"{family_name}.{o.name}: {len(diffs)} differ, e.g. {want[diffs[0]]} != {got[diffs[0]]}"
        counts[o.name] = len(want)
    return counts
