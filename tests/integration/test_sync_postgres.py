"""The same end-to-end sync with PostgreSQL as the CRM and ERP sinks (CI starts PostgreSQL)."""

from __future__ import annotations

import pytest
from zuora_etl.families import load_families

from tests.integration.test_sync_sqlite import check_sync


@pytest.mark.parametrize("family_name", [f.family for f in load_families()])
def test_sync_into_postgres_converges(env, postgres_db, monkeypatch, family_name):
    env.use_sink(monkeypatch, "zuora_crm_sink", postgres_db.conn_json)
    env.use_sink(monkeypatch, "zuora_erp_sink", postgres_db.conn_json)
    assert env.engine("zuora_crm_sink").dialect.name == "postgresql"
    check_sync(env, family_name)
