"""The zuora_preflight DAG, parsed as the scheduler would and run for real with dag.test() against
the emulator: green on the shipped configuration, failed (no retry) with a clear summary otherwise."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from include.zuora_emulator import Emulator

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "zuora_preflight.py"


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(DAG_FILE))
    assert not bag.import_errors, bag.import_errors
    return bag.dags["zuora_preflight"]


@pytest.fixture(scope="module")
def tiny():
    with Emulator(scale="tiny", seed=1) as emu:
        yield emu


def use(monkeypatch, emu: Emulator, secret: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_DEFAULT", json.dumps({
        "conn_type": "zuora", "host": emu.base_url, "login": "demo-client", "password": secret,
        "extra": {"max_attempts": 2, "backoff_seconds": 0.01},
    }))  # fmt: skip


def state_of(run) -> str:
    return str(getattr(run.state, "value", run.state))


def test_the_dag_is_manual_and_documented(dag):
    assert type(dag.timetable).__name__ == "NullTimetable"  # schedule=None: by hand only
    assert dag.doc_md and dag.doc_md.startswith("zuora_preflight:")
    assert "zuora" in dag.tags and dag.max_active_runs == 1
    assert [t.task_id for t in dag.tasks] == ["preflight"]
    assert all(t.owner != "airflow" for t in dag.tasks)
    assert dag.params["zuora_conn_id"] == "zuora_default"


def test_green_against_the_emulator(dag, tiny, monkeypatch):
    use(monkeypatch, tiny, "demo-secret")
    run = dag.test(run_conf={"zuora_conn_id": "zuora_default"})
    assert state_of(run) == "success"
    ti = next(t for t in run.get_task_instances() if t.task_id == "preflight")
    assert str(getattr(ti.state, "value", ti.state)) == "success"


def test_a_wrong_secret_fails_the_run(dag, tiny, monkeypatch):
    use(monkeypatch, tiny, "s3cr3t-wrong")
    run = dag.test(run_conf={"zuora_conn_id": "zuora_default"})
    assert state_of(run) == "failed"


def test_another_connection_by_param(dag, tiny, monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_ZUORA_DEFAULT", raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_CANDIDATE", json.dumps({
        "conn_type": "http", "host": tiny.base_url, "login": "demo-client", "password": "demo-secret",
    }))  # fmt: skip
    run = dag.test(run_conf={"zuora_conn_id": "zuora_candidate"})
    assert state_of(run) == "success"
