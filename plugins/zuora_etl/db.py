"""SQLAlchemy engines for Airflow SQL connections (sinks and the zuora_etl_state database)."""

from __future__ import annotations

import threading

import sqlalchemy as sa
from airflow.sdk import BaseHook

_engines: dict[str, sa.Engine] = {}
_lock = threading.Lock()
# SQLite serialises writers; parallel tasks wait this long for the lock instead of failing.
SQLITE_BUSY_TIMEOUT_S = 60


def engine_for(conn_id: str) -> sa.Engine:
    """One engine per connection per process, built by the connection's own provider hook, so any
    Airflow SQL connection (SQLite, PostgreSQL, MySQL...) works as it is configured in Airflow."""
    conn = BaseHook.get_connection(conn_id)
    key = f"{conn_id}|{conn.get_uri()}"  # a connection edited in Airflow gets a new engine
    with _lock:
        engine = _engines.get(key)
        if engine is None:
            hook = conn.get_hook()
            kwargs: dict = {"pool_pre_ping": True}
            if conn.conn_type == "sqlite":
                kwargs = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
            engine = hook.get_sqlalchemy_engine(engine_kwargs=kwargs)
            if engine.dialect.name == "sqlite":
                sa.event.listen(engine, "connect", _sqlite_pragmas)
            _engines[key] = engine
        return engine


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    # WAL lets readers (reports, tests) run while a load writes.
    dbapi_conn.execute("PRAGMA journal_mode=WAL")
    dbapi_conn.execute("PRAGMA synchronous=NORMAL")


def dispose_engines() -> None:
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()
