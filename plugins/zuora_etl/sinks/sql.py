"""SQL sink: SQLAlchemy 2 upserts into any Airflow SQL connection.

SQLite and PostgreSQL use their native `INSERT ... ON CONFLICT DO UPDATE ... WHERE older` with
`RETURNING`, so one statement per batch both writes and tells which keys changed. Other dialects
take a portable select-then-write path inside the same transaction.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..db import add_missing_columns, copies, create_tables, engine_for, insert_rows, stored_rows
from ..mapping import Mapping
from .base import DELETED_COLUMN, READ_CHUNK, BatchOutcome, Children, Comparison, Sink, SinkConflictError, records

log = logging.getLogger(__name__)

# One row per target table and family that loads it, in the target database itself: two families
# reaching one table through two connections to the same database see each other's claim.
claims_metadata = sa.MetaData()
table_claims = sa.Table(
    "zuora_etl_table_claims",
    claims_metadata,
    sa.Column("table_name", sa.String(128), primary_key=True),
    sa.Column("family", sa.String(64), primary_key=True),
    sa.Column("scope", sa.Text, nullable=False),
)
KEY_CHUNK = 900  # keys per IN (...) list: under SQLite's oldest bound-parameter limit of 999

# Bound parameters per statement stay under SQLite's 32,766 and PostgreSQL's 65,535; 1,000 rows a
# batch keeps each transaction short.
MAX_PARAMS = 30_000
MAX_BATCH_ROWS = 1_000
# SQLite, and PostgreSQL through psycopg 3: rows per batch written into a session's staging table
# (the driver's executemany on SQLite, COPY on PostgreSQL) and upserted from it in one statement.
# Staging skips SQLAlchemy's per-row parameter handling, which made an upsert of 100k rows take
# seconds. A batch is one transaction: 20,000 rows, a whole transformed part (settings.PART_ROWS),
# hold SQLite's one write lock for about a quarter of a second, and halve the commits (each a WAL
# append, and now and then a checkpoint) of batches of 10,000: 52 s -> 41 s for a million rows.
STAGED_BATCH_ROWS = 20_000


def column_type(kind: str, max_length: int | None = None) -> sa.types.TypeEngine:
    return {
        "string": sa.String(max_length) if max_length else sa.Text(),
        "integer": sa.BigInteger(),
        "number": sa.Float(precision=53),
        "decimal": sa.Numeric(18, 6),
        "boolean": sa.Boolean(),
        "date": sa.Date(),
        "datetime": sa.DateTime(),  # naive UTC
    }[kind]


def table_for(mapping: Mapping, metadata: sa.MetaData) -> sa.Table:
    cols = []
    for name, col in mapping.columns.items():
        kind = "string" if col.const is not None and col.type == "string" else col.type
        if name == mapping.key:
            cols.append(sa.Column(name, sa.String(64), primary_key=True))
        else:
            cols.append(sa.Column(name, column_type(kind, col.max_length), nullable=True))
    return sa.Table(mapping.table, metadata, *cols, extend_existing=True)


class SqlSink(Sink):
    def __init__(self, conn_id: str | None = None, engine: sa.Engine | None = None) -> None:
        if engine is None and conn_id is None:
            raise ValueError("SqlSink needs a connection id or an engine")
        self.engine = engine or engine_for(conn_id)  # type: ignore[arg-type]
        self.metadata = sa.MetaData()
        self._tables: dict[str, sa.Table] = {}

    def prepare(self, mapping: Mapping) -> None:
        table = table_for(mapping, self.metadata)
        create_tables(self.engine, table)
        add_missing_columns(self.engine, table)  # a mapping grew a column: add it, keep the data
        self._tables[mapping.table] = table

    def _table(self, mapping: Mapping) -> sa.Table:
        if mapping.table not in self._tables:
            self.prepare(mapping)
        return self._tables[mapping.table]

    def upsert(
        self, mapping: Mapping, frame: pd.DataFrame, *, force: bool = False, children: Children | None = None
    ) -> BatchOutcome:
        table = self._table(mapping)
        frame = frame[[c.name for c in table.columns]]
        size = max(1, min(MAX_BATCH_ROWS, MAX_PARAMS // max(1, len(table.columns))))
        if self._stages:
            size = STAGED_BATCH_ROWS
        stmt = self._statement(table, mapping.key, force)
        outcome = BatchOutcome()
        for start in range(0, len(frame), size):
            batch = frame.iloc[start : start + size]
            try:
                outcome.extend(self._write(stmt, table, mapping.key, batch, force))
            except sa.exc.DBAPIError as exc:
                log.warning("batch of %d rows refused by %s (%s); isolating bad rows", len(batch), mapping.table,
                            _first_line(exc))  # fmt: skip
                for row in records(batch):
                    try:
                        outcome.extend(self._write_rows(stmt, table, mapping.key, [row], force))
                    except sa.exc.DBAPIError as row_exc:
                        outcome.rejected.append((row[mapping.key], _first_line(row_exc)))
        return outcome

    def _statement(self, table: sa.Table, key: str, force: bool) -> sa.Insert | None:
        """One native upsert statement per table, executed with many parameter sets: SQLAlchemy
        compiles it once and sends rows in multi-row batches ("insertmanyvalues"), RETURNING the
        keys it actually wrote."""
        dialect = self.engine.dialect.name
        if dialect not in ("sqlite", "postgresql"):
            return None
        insert = (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)
        return insert.on_conflict_do_update(
            index_elements=[table.c[key]],
            set_={c.name: insert.excluded[c.name] for c in table.columns if c.name != key},
            where=self._replaces(table, key, insert.excluded, force),
        ).returning(table.c[key])

    @property
    def _stages(self) -> bool:
        """Whether batches go through a staging table (`_staged_upsert`): SQLite, and PostgreSQL
        with psycopg 3 (COPY). Other drivers take the statement with its parameters."""
        return self.engine.dialect.name == "sqlite" or copies(self.engine.dialect)

    def _write(
        self, stmt: sa.Insert | None, table: sa.Table, key: str, batch: pd.DataFrame, force: bool
    ) -> BatchOutcome:
        if stmt is None or not self._stages:
            return self._write_rows(stmt, table, key, records(batch), force)
        keys = batch[key].tolist()
        with self.engine.begin() as conn:
            written = self._staged_upsert(conn, table, key, stored_rows(table, batch, conn.dialect), force)
        return BatchOutcome(written=[k for k in keys if k in written], unchanged=[k for k in keys if k not in written])

    def _write_rows(
        self, stmt: sa.Insert | None, table: sa.Table, key: str, batch: list[dict], force: bool
    ) -> BatchOutcome:
        """Rows as dicts through the statement (or the portable path): other drivers, and one row
        at a time where a database refused a batch."""
        keys = [r[key] for r in batch]
        with self.engine.begin() as conn:
            if stmt is not None:
                written = set(conn.execute(stmt, batch).scalars())
            else:
                written = self._portable_write(conn, table, key, batch, force)
        return BatchOutcome(written=[k for k in keys if k in written], unchanged=[k for k in keys if k not in written])

    def _staged_upsert(self, conn: sa.Connection, table: sa.Table, key: str, rows: list[tuple], force: bool) -> set:
        """Write the batch (rows as stored, in column order) into a temporary table of this
        session, then one `INSERT ... SELECT ... ON CONFLICT DO UPDATE ... WHERE <_replaces>
        RETURNING key` from it: the rule of the statement path, set-based, without SQLAlchemy's
        per-row parameter handling (PostgreSQL: COPY; SQLite: the driver's executemany, in C).
        The staging table's name carries a digest of the columns, so a mapping that grew a column
        gets a new one; it is emptied at commit (PostgreSQL) or before each batch (SQLite)."""
        names = [c.name for c in table.columns]
        stage = self._stage(conn, table)
        insert_rows(conn, stage, names, rows, stored=True)
        source = sa.select(*[stage.c[n] for n in names]).where(sa.true())  # SQLite: WHERE keeps ON CONFLICT unambiguous
        insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(table)
        stmt = insert.from_select(names, source).on_conflict_do_update(
            index_elements=[table.c[key]],
            set_={n: insert.excluded[n] for n in names if n != key},
            where=self._replaces(table, key, insert.excluded, force),
        )
        return set(conn.execute(stmt.returning(table.c[key])).scalars())

    @staticmethod
    def _stage(conn: sa.Connection, table: sa.Table) -> sa.Table:
        """This session's empty staging table for `table`'s columns (created on first use)."""
        names = [c.name for c in table.columns]
        digest = hashlib.sha1(",".join(names).encode()).hexdigest()[:10]
        name = f"zuora_etl_stage_{digest}"
        quote = conn.dialect.identifier_preparer.quote
        if conn.dialect.name == "postgresql":
            like = f"(LIKE {quote(table.name)}) ON COMMIT DELETE ROWS"
            conn.exec_driver_sql(f"CREATE TEMP TABLE IF NOT EXISTS {quote(name)} {like}")
            return sa.Table(name, sa.MetaData(), *[sa.Column(c.name, c.type) for c in table.columns])
        # SQLite: the same declared types as the target, so values land with the same affinity.
        stage = sa.Table(name, sa.MetaData(), *[sa.Column(c.name, c.type) for c in table.columns], schema="temp")
        conn.execute(sa.schema.CreateTable(stage, if_not_exists=True))
        conn.execute(stage.delete())
        return stage

    @staticmethod
    def _replaces(table: sa.Table, key: str, incoming, force: bool) -> sa.ColumnElement[bool]:
        """When an incoming row replaces the stored one: a newer updated_date; or the same second
        with other content (Zuora's updatedDate has one-second resolution, so two versions can
        share it); or, forced (replay, repair), the same updated_date whatever the content. An
        identical re-read (the overlap) writes nothing."""
        if force:
            return table.c.updated_date <= incoming.updated_date
        same_second = table.c.updated_date == incoming.updated_date
        changed = sa.or_(*(table.c[c.name].is_distinct_from(incoming[c.name]) for c in table.columns if c.name != key))
        return (table.c.updated_date < incoming.updated_date) | (same_second & changed)

    @staticmethod
    def _portable_write(conn: sa.Connection, table: sa.Table, key: str, batch: list[dict], force: bool) -> set:
        """The same rule as `_replaces`, for dialects without ON CONFLICT: read, compare, write."""
        found = conn.execute(sa.select(table).where(table.c[key].in_([r[key] for r in batch]))).mappings()
        current = {r[key]: dict(r) for r in found}
        written = set()
        for row in batch:
            have = current.get(row[key])
            if have is None:
                conn.execute(sa.insert(table).values(row))
            else:
                old, new = have["updated_date"], row["updated_date"]
                if not (old is None or old < new or (old == new and (force or have != row))):
                    continue
                conn.execute(sa.update(table).where(table.c[key] == row[key]).values(row))
            written.add(row[key])
        return written

    def compare(
        self, mapping: Mapping, frame: pd.DataFrame, *, force: bool = False, children: Children | None = None
    ) -> Comparison:
        table = table_for(mapping, sa.MetaData())
        rows = records(frame[[c.name for c in table.columns]])
        key = mapping.key
        current: dict[str, dict] = {}
        if sa.inspect(self.engine).has_table(mapping.table):
            present = {c["name"] for c in sa.inspect(self.engine).get_columns(mapping.table)}
            columns = [c for c in table.columns if c.name in present]
            with self.engine.connect() as conn:
                for start in range(0, len(rows), KEY_CHUNK):
                    chunk = [r[key] for r in rows[start : start + KEY_CHUNK]]
                    found = conn.execute(sa.select(*columns).where(table.c[key].in_(chunk))).mappings()
                    current.update((r[key], dict(r)) for r in found)
        out = Comparison()
        for row in rows:
            have = current.get(row[key])
            if have is None:
                out.inserted.append(row[key])
                continue
            changes = {c: [_text(have.get(c)), _text(v)] for c, v in row.items() if not _same(have.get(c), v)}
            old, new = have.get("updated_date"), row["updated_date"]
            newer = old is None or (new is not None and old < new)
            if changes and (newer or old == new or (force and old is not None and new is not None and old <= new)):
                out.updated.append(row[key])
                out.differences.append({"id": row[key], "changes": changes})
            else:
                out.unchanged.append(row[key])
        return out

    def claim(self, mapping: Mapping, family: str, scope: str) -> None:
        create_tables(self.engine, table_claims)
        mine = {"table_name": mapping.table, "family": family, "scope": scope}
        with self.engine.begin() as conn:
            claims = conn.execute(sa.select(table_claims).where(table_claims.c.table_name == mapping.table)).mappings()
            others = [dict(c) for c in claims if c["family"] != family and c["scope"] != scope]
            if others:
                other = others[0]
                raise SinkConflictError(
                    f"table {mapping.table} of this database is already loaded by family {other['family']} "
                    f"({other['scope']}); family {family} would mix other records into it ({scope}). Give one "
                    "of them its own sink connection, or another `table` in its mapping."
                )
            conn.execute(table_claims.delete().where(
                (table_claims.c.table_name == mapping.table) & (table_claims.c.family == family)
            ))  # fmt: skip
            conn.execute(table_claims.insert().values(**mine))

    def updated_dates(self, mapping: Mapping, keys: list[str]) -> dict[str, object]:
        table = self._table(mapping)
        found: dict[str, object] = {}
        with self.engine.connect() as conn:
            for start in range(0, len(keys), KEY_CHUNK):
                query = sa.select(table.c[mapping.key], table.c.updated_date).where(
                    table.c[mapping.key].in_(keys[start : start + KEY_CHUNK])
                )
                found.update(conn.execute(query).tuples().all())
        return found

    def _read_columns(self, mapping: Mapping, columns: Sequence[str]) -> tuple[sa.Table, list] | None:
        """The table (None when it does not exist) and the selected columns: key, updated_date,
        `columns`, and the soft-delete column (a NULL where the table lacks it)."""
        inspector = sa.inspect(self.engine)
        if not inspector.has_table(mapping.table):
            return None
        present = {c["name"] for c in inspector.get_columns(mapping.table)}
        table = table_for(mapping, sa.MetaData())
        if DELETED_COLUMN in present:
            table.append_column(sa.Column(DELETED_COLUMN, sa.DateTime))
        names = list(dict.fromkeys([mapping.key, "updated_date", *columns]))
        selected = [table.c[n] for n in names]
        deleted = table.c[DELETED_COLUMN] if DELETED_COLUMN in present else sa.null().label(DELETED_COLUMN)
        return table, [*selected, deleted]

    def _ordered_key(self, table: sa.Table, key: str):
        """The key in byte order whatever the database's collation, so that both sides of a merge
        join agree on what comes first (Python compares str by code point)."""
        column = table.c[key]
        return column.collate("C") if self.engine.dialect.name == "postgresql" else column

    def iter_rows(
        self,
        mapping: Mapping,
        columns: Sequence[str],
        *,
        lo: datetime | None = None,
        hi: datetime | None = None,
        parent: tuple[str, Sequence[str]] | None = None,
        chunk: int = READ_CHUNK,
    ) -> Iterator[list[dict]]:
        found = self._read_columns(mapping, columns)
        if found is None:
            return
        table, selected = found
        key = self._ordered_key(table, mapping.key)
        where = []
        if lo is not None:
            where.append(table.c.updated_date >= lo)
        if hi is not None:
            where.append(table.c.updated_date < hi)
        if parent is not None:
            values = list(parent[1])
            if not values:
                return
            where.append(table.c[parent[0]].in_(values))
        last: str | None = None
        while True:  # keyset paging: each chunk one short read, no transaction held across chunks
            query = sa.select(*selected).where(*where, *([key > last] if last is not None else []))
            with self.engine.connect() as conn:
                rows = [dict(r) for r in conn.execute(query.order_by(key).limit(chunk)).mappings()]
            if not rows:
                return
            yield rows
            if len(rows) < chunk:
                return
            last = rows[-1][mapping.key]

    def rows_by_key(self, mapping: Mapping, columns: Sequence[str], keys: Sequence[str]) -> dict[str, dict]:
        found = self._read_columns(mapping, columns)
        out: dict[str, dict] = {}
        if found is None:
            return out
        table, selected = found
        keys = list(dict.fromkeys(keys))
        with self.engine.connect() as conn:
            for start in range(0, len(keys), KEY_CHUNK):
                query = sa.select(*selected).where(table.c[mapping.key].in_(keys[start : start + KEY_CHUNK]))
                out.update((r[mapping.key], dict(r)) for r in conn.execute(query).mappings())
        return out

    def set_deleted(self, mapping: Mapping, marks: dict[str, datetime | None]) -> int:
        if not marks:
            return 0
        table = table_for(mapping, sa.MetaData())  # not the sink's own: upserts never write this column
        table.append_column(sa.Column(DELETED_COLUMN, sa.DateTime, nullable=True))
        create_tables(self.engine, table)
        add_missing_columns(self.engine, table)
        stmt = (
            table.update()
            .where(table.c[mapping.key] == sa.bindparam("k"))
            .where(table.c[DELETED_COLUMN].is_distinct_from(sa.bindparam("at")))
            .values({DELETED_COLUMN: sa.bindparam("at")})
        )
        params = [{"k": k, "at": _naive(at)} for k, at in marks.items()]
        changed = 0
        with self.engine.begin() as conn:
            for start in range(0, len(params), MAX_BATCH_ROWS):
                changed += conn.execute(stmt, params[start : start + MAX_BATCH_ROWS]).rowcount or 0
        return changed

    def read_keys(self, mapping: Mapping) -> dict[str, object]:
        table = self._table(mapping)
        with self.engine.connect() as conn:
            return dict(conn.execute(sa.select(table.c[mapping.key], table.c.updated_date)).tuples().all())


def _same(stored: object, incoming: object) -> bool:
    """Whether a stored value equals an incoming one across the driver's types (Decimal against
    float, a naive datetime against a pandas Timestamp)."""
    if stored is None or incoming is None:
        return stored is None and incoming is None
    if isinstance(stored, (int, float, Decimal)) and isinstance(incoming, (int, float, Decimal)):
        return math.isclose(float(stored), float(incoming), rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(stored, (datetime, date)) and isinstance(incoming, (datetime, date)):
        return pd.Timestamp(stored) == pd.Timestamp(incoming)
    return str(stored) == str(incoming)


def _naive(value: datetime | None) -> datetime | None:
    """Naive UTC, as every datetime column of the target."""
    if value is None or value.tzinfo is None:
        return value
    return pd.Timestamp(value).tz_convert("UTC").tz_localize(None).to_pydatetime()


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, (datetime, date)):
        return pd.Timestamp(value).isoformat()
    return str(value)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", exc) or exc)
    return text.strip().splitlines()[0][:500] if text.strip() else type(exc).__name__
