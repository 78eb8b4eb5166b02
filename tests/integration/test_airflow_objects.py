"""The project's Variables and connections carry descriptions in Airflow's metadata database: a
sync writes its watermarks with one; `python -m zuora_etl.airflow_objects` describes the rest."""

from __future__ import annotations

import pytest
from zuora_etl.airflow_objects import CONNECTIONS, VARIABLES, describe, main, variable_description
from zuora_etl.windows import hwm_variable


def variable_row(key: str):
    from airflow.models import Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(Variable).filter(Variable.key == key).one_or_none()
        return (row.val, row.description) if row else None


@pytest.fixture
def clean_metadata():
    from airflow.models import Connection, Variable
    from airflow.utils.session import create_session

    def wipe():
        with create_session() as session:
            session.query(Variable).filter(Variable.key.like("zuora_%")).delete(synchronize_session=False)
            session.query(Connection).filter(Connection.conn_id.like("zuora_%")).delete(synchronize_session=False)

    wipe()
    yield
    wipe()


def test_a_sync_writes_its_watermarks_with_a_description(env, clean_metadata):
    assert env.run("zuora_crm_accounts") == "success"
    for obj in ("accounts", "contacts"):
        value, description = variable_row(hwm_variable("crm_accounts", obj))
        assert value and description == variable_description(hwm_variable("crm_accounts", obj))
        assert f"{obj} in the crm_accounts family" in description


def test_describe_fills_missing_descriptions_never_values(clean_metadata, capsys):
    from airflow.models import Connection, Variable
    from airflow.utils.session import create_session

    with create_session() as session:
        session.add(Variable(key="zuora_etl_settle_seconds", val="30"))
        session.add(Variable(key=hwm_variable("erp_memos", "debit_memos"), val="2026-11-30T00:00:00+00:00"))
        session.add(Variable(key="zuora_etl_staging_root", val="s3://b/z", description="ours, kept"))
        session.add(Connection(conn_id="zuora_etl_state", conn_type="sqlite", host="/tmp/s.db"))
    changed = describe(create_defaults=True)
    assert variable_row("zuora_etl_settle_seconds") == ("30", variable_description("zuora_etl_settle_seconds"))
    assert "debit_memos in the erp_memos family" in variable_row(hwm_variable("erp_memos", "debit_memos"))[1]
    assert variable_row("zuora_etl_staging_root") == ("s3://b/z", "ours, kept")
    defaults = {v.name: v.default for v in VARIABLES if v.default is not None}
    assert defaults and all(variable_row(k) == (d, variable_description(k)) for k, d in defaults.items())
    assert variable_row("zuora_etl_initial_watermark") is None, "no default value: never created"
    with create_session() as session:
        conn = session.query(Connection).filter(Connection.conn_id == "zuora_etl_state").one()
        assert conn.description == next(c.description for c in CONNECTIONS if c.name == "zuora_etl_state")
    assert len(changed) == 3 + len(defaults)
    assert main([]) == 0
    assert "already has its description" in capsys.readouterr().out
