"""Shared fixtures: an isolated Airflow home (set before anything imports airflow) and live
emulators on free loopback ports."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator

import pytest

from tests.airflow_env import configure

AIRFLOW_HOME = configure()

from include.zuora_emulator import Emulator  # noqa: E402


@pytest.fixture(scope="session")
def shared_emulator() -> Iterator[Emulator]:
    """A read-only emulated tenant shared by tests that do not mutate it."""
    with Emulator(scale="small", seed=42) as emu:
        yield emu


@pytest.fixture
def fresh_emulator() -> Iterator[Emulator]:
    """A private tenant for tests that mutate data, swap faults or expire tokens."""
    with Emulator(scale="small", seed=42) as emu:
        yield emu


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
