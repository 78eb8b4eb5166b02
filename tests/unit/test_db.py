"""Table creation is safe when parallel tasks (two loads of one DAG run) do it at the same time; rows
written from a frame are stored exactly as SQLAlchemy stores them."""

from __future__ import annotations

import threading
from datetime import date
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa
from zuora_etl.db import add_missing_columns, create_tables, insert_rows, stored_rows, stored_values
from zuora_etl.state import metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        url = request.getfixturevalue("postgres_db").url
    engine = sa.create_engine(url, connect_args={"timeout": 30} if request.param == "sqlite" else {})
    yield engine
    engine.dispose()


def test_concurrent_creation_of_the_same_tables_succeeds(engine):
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def create() -> None:
        try:
            barrier.wait()
            create_tables(engine, *metadata.sorted_tables)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert {"zuora_etl_runs", "zuora_etl_ledger", "zuora_etl_dead_letters"} <= set(sa.inspect(engine).get_table_names())


def test_missing_columns_are_added_once(engine):
    narrow = sa.Table("t", sa.MetaData(), sa.Column("id", sa.String(64), primary_key=True))
    create_tables(engine, narrow)
    wide = sa.Table("t", sa.MetaData(), sa.Column("id", sa.String(64), primary_key=True), sa.Column("extra", sa.Text))
    add_missing_columns(engine, wide)
    add_missing_columns(engine, wide)
    assert {c["name"] for c in sa.inspect(engine).get_columns("t")} == {"id", "extra"}


# Every column type a mapping can give (sinks/sql.py column_type), with a missing value in each.
TYPED = sa.Table(
    "typed",
    sa.MetaData(),
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("at", sa.DateTime()),
    sa.Column("day", sa.Date()),
    sa.Column("amount", sa.Numeric(18, 6)),
    sa.Column("ratio", sa.Float(precision=53)),
    sa.Column("count", sa.BigInteger()),
    sa.Column("flag", sa.Boolean()),
    sa.Column("name", sa.Text()),
)


def typed_frame() -> pd.DataFrame:
    return pd.DataFrame({
        "id": ["a", "b", "c"],
        "at": pd.to_datetime(["2026-01-02 03:04:05.123456", None, "1999-12-31 23:59:59.000000"]),
        "day": [date(2026, 1, 2), None, date(2000, 2, 29)],
        "amount": [Decimal("12.5"), None, Decimal("-0.000001")],
        "ratio": [0.25, float("nan"), 3.0],
        "count": pd.array([7, None, -1], dtype="Int64"),
        "flag": pd.array([True, None, False], dtype="boolean"),
        "name": pd.array(["x", None, "ü"], dtype="string"),
    })  # fmt: skip


def test_a_frame_is_stored_exactly_as_sqlalchemy_stores_its_rows(engine):
    """`stored_rows` (numpy-formatted datetimes, no per-row SQLAlchemy) writes the very values an
    insert of the same rows as dicts writes: compared as the database holds them (text)."""
    frame = typed_frame()
    create_tables(engine, TYPED)
    plain = TYPED.to_metadata(sa.MetaData(), name="typed_plain")
    create_tables(engine, plain)
    dicts = [{k: (None if pd.isna(v) else v) for k, v in row.items()} for row in frame.to_dict("records")]
    with engine.begin() as conn:
        conn.execute(plain.insert(), dicts)
        insert_rows(conn, TYPED, [c.name for c in TYPED.columns], stored_rows(TYPED, frame, conn.dialect), stored=True)

    def held(name: str) -> list[tuple]:
        cols = ", ".join(f'CAST("{c.name}" AS TEXT)' for c in TYPED.columns)
        with engine.connect() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(f"SELECT {cols} FROM {name} ORDER BY id")]

    assert held("typed") == held("typed_plain")
    assert held("typed")[1][1:] == (None,) * (len(TYPED.columns) - 1)


def test_sqlite_datetimes_are_formatted_in_one_call_as_sqlalchemy_would():
    dialect = sa.create_engine("sqlite://").dialect
    column = TYPED.c.at
    values = typed_frame()["at"]
    processor = column.type.dialect_impl(dialect).bind_processor(dialect)
    expected = [None if pd.isna(v) else processor(v.to_pydatetime()) for v in values]
    assert stored_values(column, values, dialect) == expected == ["2026-01-02 03:04:05.123456", None,
                                                                  "1999-12-31 23:59:59.000000"]  # fmt: skip
