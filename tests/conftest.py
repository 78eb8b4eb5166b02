"""Shared fixtures: an isolated Airflow home (set before anything imports airflow) and live
emulators on free loopback ports."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

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


# Where the PostgreSQL tests look; override for a server elsewhere (user with CREATE DATABASE).
PG_HOST = os.environ.get("ZUORA_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("ZUORA_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("ZUORA_TEST_PG_USER", "postgres")


@dataclass(frozen=True)
class PgDatabase:
    name: str

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.name}"

    @property
    def conn_json(self) -> str:
        """The Airflow connection (AIRFLOW_CONN_*) for this database."""
        return json.dumps({"conn_type": "postgres", "host": PG_HOST, "port": PG_PORT, "login": PG_USER,
                           "schema": self.name})  # fmt: skip


@pytest.fixture
def postgres_db() -> Iterator[PgDatabase]:
    """A throwaway PostgreSQL database; skipped where no server answers, except under CI."""
    import psycopg

    try:
        admin = psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3,
                                autocommit=True)  # fmt: skip
    except Exception as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide PostgreSQL on {PG_HOST}:{PG_PORT}: {exc}")
        pytest.skip(f"no PostgreSQL on {PG_HOST}:{PG_PORT} ({type(exc).__name__}); set ZUORA_TEST_PG_HOST/PORT")
    name = f"zuora_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield PgDatabase(name)
    finally:
        from zuora_etl.db import dispose_engines

        dispose_engines()
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
