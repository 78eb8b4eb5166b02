"""SQLAlchemy engines for Airflow SQL connections (sinks and the zuora_etl_state database)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

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


def create_tables(engine: sa.Engine, *tables: sa.Table) -> None:
    """Create tables and their indexes if missing, safe when parallel tasks do it at once.

    `checkfirst` checks, then creates: two loads starting together both see no table and one of
    them fails. `IF NOT EXISTS` closes that gap; PostgreSQL can still refuse one of two racing
    creations (a catalog unique violation), so a refusal is checked against what now exists."""
    for table in tables:
        for attempt in range(3):
            try:
                with engine.begin() as conn:
                    conn.execute(sa.schema.CreateTable(table, if_not_exists=True))
                    for index in table.indexes:
                        conn.execute(sa.schema.CreateIndex(index, if_not_exists=True))
                break
            except sa.exc.DBAPIError:
                if attempt == 2 or not sa.inspect(engine).has_table(table.name):
                    raise


def add_missing_columns(engine: sa.Engine, table: sa.Table) -> None:
    """Add the table's columns the database lacks (a mapping grew); tolerant of a parallel adder."""
    existing = {c["name"] for c in sa.inspect(engine).get_columns(table.name)}
    for column in table.columns:
        if column.name in existing:
            continue
        ddl = column.type.compile(dialect=engine.dialect)
        try:
            with engine.begin() as conn:
                conn.execute(sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {ddl}'))
        except sa.exc.DBAPIError:
            if column.name not in {c["name"] for c in sa.inspect(engine).get_columns(table.name)}:
                raise


def copies(dialect: sa.Dialect) -> bool:
    """Whether rows can be COPYed (PostgreSQL through psycopg 3, whose cursors have `copy`)."""
    return dialect.name == "postgresql" and dialect.driver == "psycopg"


def insert_rows(conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert many rows (tuples in `columns` order) in the open transaction, without SQLAlchemy's
    per-row parameter handling, which costs more than the database's own work for 100,000 rows:
    COPY on psycopg 3, else the driver's executemany. Each value goes through its column type's bind
    processor first, so what is stored is exactly what `conn.execute(table.insert(), dicts)` stores.
    A refusal is raised as SQLAlchemy's DBAPIError, as that would be."""
    if not rows:
        return
    dialect = conn.dialect
    processors = [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]
    if any(processors):
        converted = [
            [p(v) for v in column] if p else column
            for p, column in zip(processors, zip(*rows, strict=True), strict=True)
        ]
        rows = list(zip(*converted, strict=True))
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(n) for n in columns)
    target = quote(table.name)
    if copies(dialect):
        sql = f"COPY {target} ({names}) FROM STDIN"
        error = dialect.loaded_dbapi.Error
        try:
            with conn.connection.driver_connection.cursor() as cur, cur.copy(sql) as copy:
                for row in rows:
                    copy.write_row(row)
        except error as exc:
            raise sa.exc.DBAPIError.instance(sql, None, exc, error) from exc
        return
    if dialect.paramstyle not in ("qmark", "format", "pyformat"):
        conn.execute(table.insert(), [dict(zip(columns, row, strict=True)) for row in rows])
        return
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    conn.exec_driver_sql(f"INSERT INTO {target} ({names}) VALUES ({', '.join([mark] * len(columns))})", list(rows))
