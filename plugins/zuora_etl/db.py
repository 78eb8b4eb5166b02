"""SQLAlchemy engines for Airflow SQL connections (sinks and the zuora_etl_state database)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from airflow.sdk import BaseHook

if TYPE_CHECKING:  # imported where used: light DAG files (see dag_factory)
    import pandas as pd

_engines: dict[str, sa.Engine] = {}
_lock = threading.Lock()
# SQLite serialises writers; parallel tasks wait this long for the lock instead of failing.
SQLITE_BUSY_TIMEOUT_S = 60
# SQLite copies its write-ahead log back into the database file (a checkpoint, with an fsync) once
# the log passes this many pages. SQLite's 1,000 (4 MB) checkpoints a large load every few
# batches; 10,000 (40 MB of log at most) let a page changed by several batches be copied once:
# a million rows with their ledger loaded in 39 s instead of 41 s.
SQLITE_WAL_CHECKPOINT_PAGES = 10_000


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
    dbapi_conn.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_CHECKPOINT_PAGES}")


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


def stored_values(column: sa.Column, values: pd.Series, dialect: sa.Dialect) -> list[Any]:
    """A frame's column as the driver receives it: what the column type's bind processor makes of
    each value, with None for every missing one, so that rows written from a frame are exactly those
    `conn.execute(table.insert(), dicts)` writes.

    Hand-written because SQLAlchemy converts one value at a time: a naive datetime64 column bound to
    SQLite (whose DATETIME processor formats each value in Python, 1.6 s per 100,000 rows) is
    formatted by numpy in one call instead, as the same text (`YYYY-MM-DD HH:MM:SS.ffffff`)."""
    import numpy as np
    import pandas as pd

    if (
        dialect.name == "sqlite"
        and isinstance(column.type, sa.DateTime)
        and pd.api.types.is_datetime64_dtype(values.dtype)  # naive only: an aware one takes the processor
    ):
        text = np.datetime_as_string(values.to_numpy(dtype="datetime64[us]"), unit="us")
        return [None if t == "NaT" else t.replace("T", " ", 1) for t in text.tolist()]
    plain = values.astype(object).where(values.notna(), None).tolist()
    processor = column.type.dialect_impl(dialect).bind_processor(dialect)
    return [None if v is None else processor(v) for v in plain] if processor else plain


def stored_rows(table: sa.Table, frame: pd.DataFrame, dialect: sa.Dialect) -> list[tuple]:
    """The frame's rows in `table.columns` order, each value as stored (`stored_values`)."""
    columns = [stored_values(c, frame[c.name], dialect) for c in table.columns]
    return list(zip(*columns, strict=True))


def insert_rows(
    conn: sa.Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, stored: bool = False
) -> None:
    """Insert many rows (tuples in `columns` order) in the open transaction, without SQLAlchemy's
    per-row parameter handling, which costs more than the database's own work for 100,000 rows:
    COPY on psycopg 3, else the driver's executemany. Unless the rows are already `stored` (from
    `stored_rows`), each value goes through its column type's bind processor first, so what is
    stored is exactly what `conn.execute(table.insert(), dicts)` stores. A refusal is raised as
    SQLAlchemy's DBAPIError, as that would be."""
    if not rows:
        return
    dialect = conn.dialect
    processors = [] if stored else [table.c[n].type.dialect_impl(dialect).bind_processor(dialect) for n in columns]
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
