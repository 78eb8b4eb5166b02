from __future__ import annotations

import json
import os
import uuid

import pytest

from tests.sync_harness import SyncEnv


@pytest.fixture
def env(fresh_emulator, tmp_path, monkeypatch) -> SyncEnv:
    return SyncEnv(fresh_emulator, tmp_path, monkeypatch)


def _postgres_admin():
    import psycopg

    return psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=postgres", connect_timeout=3,
                           autocommit=True)  # fmt: skip


@pytest.fixture
def postgres_db():
    """A throwaway PostgreSQL database; skipped where no server runs, except under CI."""
    try:
        admin = _postgres_admin()
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide PostgreSQL on 127.0.0.1:5432: {exc}")
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 ({type(exc).__name__})")
    name = f"zuora_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield json.dumps({"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres",
                          "schema": name})  # fmt: skip
    finally:
        from zuora_etl.db import dispose_engines

        dispose_engines()
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
