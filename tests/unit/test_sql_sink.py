"""The SQL sink on real SQLite files and a real PostgreSQL database."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa
from zuora_etl.mapping import Mapping
from zuora_etl.sinks.base import records
from zuora_etl.sinks.sql import SqlSink

MAPPING = Mapping.model_validate({
    "object": "invoices", "table": "invoices",
    "columns": {"id": {"source": "id"}, "updated_date": {"source": "updatedDate", "type": "datetime"},
                "amount": {"source": "amount", "type": "decimal"}, "status": {"source": "status"}},
})  # fmt: skip


def rows(*items) -> pd.DataFrame:
    return pd.DataFrame([{"id": i, "updated_date": datetime(2026, 1, d), "amount": a, "status": s}
                         for i, d, a, s in items])  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'sink.db'}")
        yield engine
        engine.dispose()
        return
    engine = sa.create_engine(request.getfixturevalue("postgres_db").url)
    yield engine
    engine.dispose()


def table(engine) -> dict:
    with engine.connect() as conn:
        result = conn.execute(sa.text("SELECT * FROM invoices"))
        return {r.id: (pd.Timestamp(r.updated_date).day, float(r.amount), r.status) for r in result}


def test_insert_then_newer_wins_older_is_ignored(engine):
    sink = SqlSink(engine=engine)
    out = sink.upsert(MAPPING, rows(("a", 1, 10.0, "Draft"), ("b", 1, 20.0, "Draft")))
    assert sorted(out.written) == ["a", "b"]
    out = sink.upsert(MAPPING, rows(("a", 2, 11.0, "Posted"), ("b", 1, 20.0, "Draft")))
    assert out.written == ["a"] and out.unchanged == ["b"]
    out = sink.upsert(MAPPING, rows(("a", 1, 99.0, "Draft")))  # an older version arrives late
    assert out.unchanged == ["a"]
    assert table(engine) == {"a": (2, 11.0, "Posted"), "b": (1, 20.0, "Draft")}


def test_same_second_with_other_content_is_written(engine):
    sink = SqlSink(engine=engine)
    sink.upsert(MAPPING, rows(("a", 1, 10.0, "Draft")))
    assert sink.upsert(MAPPING, rows(("a", 1, 10.0, "Draft"))).unchanged == ["a"]
    assert sink.upsert(MAPPING, rows(("a", 1, 10.0, "Posted"))).written == ["a"]
    assert table(engine)["a"] == (1, 10.0, "Posted")


def test_force_rewrites_an_equal_version(engine):
    sink = SqlSink(engine=engine)
    sink.upsert(MAPPING, rows(("a", 2, 10.0, "Draft")))
    assert sink.upsert(MAPPING, rows(("a", 2, 10.0, "Draft")), force=True).written == ["a"]
    assert sink.upsert(MAPPING, rows(("a", 1, 10.0, "Draft")), force=True).unchanged == ["a"]


def test_large_loads_are_batched(engine):
    sink = SqlSink(engine=engine)
    frame = rows(*[(f"id{i:05d}", 1, float(i), "Posted") for i in range(2500)])
    assert len(sink.upsert(MAPPING, frame).written) == 2500
    assert len(sink.read_keys(MAPPING)) == 2500


def test_a_new_mapping_column_is_added_to_an_existing_table(engine):
    SqlSink(engine=engine).upsert(MAPPING, rows(("a", 1, 10.0, "Draft")))
    grown = Mapping.model_validate({**MAPPING.model_dump(), "columns": {
        **MAPPING.model_dump()["columns"], "currency": {"source": "currency"}}})  # fmt: skip
    frame = rows(("a", 2, 10.0, "Draft")).assign(currency="EUR")
    assert SqlSink(engine=engine).upsert(grown, frame).written == ["a"]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT currency FROM invoices")).scalar() == "EUR"


def test_portable_path_follows_the_same_rules(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'p.db'}")
    sink = SqlSink(engine=engine)
    sink.prepare(MAPPING)
    tbl = sink._tables["invoices"]
    with engine.begin() as conn:
        new = [{"id": "a", "updated_date": datetime(2026, 1, 2), "amount": 1.0, "status": "Draft"}]
        assert sink._portable_write(conn, tbl, "id", new, False) == {"a"}
        assert sink._portable_write(conn, tbl, "id", new, False) == set()
        older = [{**new[0], "updated_date": datetime(2026, 1, 1), "status": "Posted"}]
        assert sink._portable_write(conn, tbl, "id", older, False) == set()
        same_second = [{**new[0], "status": "Posted"}]
        assert sink._portable_write(conn, tbl, "id", same_second, False) == {"a"}


def test_rows_the_database_refuses_are_isolated_and_reported(postgres_db):
    engine = sa.create_engine(postgres_db.url)
    narrow = Mapping.model_validate({**MAPPING.model_dump(), "columns": {
        **MAPPING.model_dump()["columns"], "status": {"source": "status", "max_length": 6}}})  # fmt: skip
    out = SqlSink(engine=engine).upsert(narrow, rows(("a", 1, 1.0, "Posted"), ("b", 1, 2.0, "Cancelled"),
                                                     ("c", 1, 3.0, "Draft")))  # fmt: skip
    assert sorted(out.written) == ["a", "c"]
    assert [k for k, _ in out.rejected] == ["b"] and "too long" in out.rejected[0][1]
    engine.dispose()


def test_compare_follows_the_upsert_rule_and_writes_nothing(engine):
    sink = SqlSink(engine=engine)
    sink.upsert(MAPPING, rows(("a", 1, 1.0, "Posted"), ("b", 1, 2.0, "Posted"), ("c", 2, 3.0, "Posted")))
    incoming = rows(("a", 1, 1.0, "Posted"), ("b", 1, 9.5, "Posted"), ("c", 1, 7.0, "Posted"), ("d", 2, 4.0, "Draft"))
    diff = sink.compare(MAPPING, incoming)
    assert (diff.inserted, diff.updated, diff.unchanged) == (["d"], ["b"], ["a", "c"])  # c: the target is newer
    assert diff.differences == [{"id": "b", "changes": {"amount": ["2.000000", "9.5"]}}] or diff.differences == [
        {"id": "b", "changes": {"amount": ["2.0", "9.5"]}}
    ]
    assert sink.compare(MAPPING, rows(("a", 1, 1.0, "Posted")), force=True).updated == []  # forced, but identical
    assert set(table(engine)) == {"a", "b", "c"} and table(engine)["b"][1] == 2.0


def test_compare_against_a_missing_table_is_all_inserts(tmp_path):
    sink = SqlSink(engine=sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}"))
    assert sink.compare(MAPPING, rows(("a", 1, 1.0, "Posted"))).inserted == ["a"]
    assert sa.inspect(sink.engine).get_table_names() == []


TYPED_MAPPING = Mapping.model_validate({
    "object": "accounts", "table": "typed",
    "columns": {"id": {"source": "id"}, "updated_date": {"source": "updatedDate", "type": "datetime"},
                "day": {"source": "lastInvoiceDate", "type": "date"},
                "amount": {"source": "balance", "type": "decimal"}, "ratio": {"source": "mrr", "type": "number"},
                "count": {"source": "billCycleDay", "type": "integer"},
                "flag": {"source": "autoPay", "type": "boolean"}, "name": {"source": "name"}},
})  # fmt: skip


def typed_rows(n: int) -> pd.DataFrame:
    return pd.DataFrame({
        "id": [f"id{i:05d}" for i in range(n)],
        "updated_date": pd.to_datetime([f"2026-01-{1 + i % 28:02d} 10:00:{i % 60:02d}.{i:06d}" for i in range(n)]),
        "day": [date(2026, 1, 1 + i % 28) if i % 7 else None for i in range(n)],
        "amount": [Decimal(i) / 100 if i % 5 else None for i in range(n)],
        "ratio": [i / 3 if i % 6 else float("nan") for i in range(n)],
        "count": pd.array([i if i % 4 else None for i in range(n)], dtype="Int64"),
        "flag": pd.array([bool(i % 2) if i % 3 else None for i in range(n)], dtype="boolean"),
        "name": pd.array([f"n{i}" if i % 8 else None for i in range(n)], dtype="string"),
    })  # fmt: skip


def stored(engine, table: str) -> list[tuple]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id")]


def test_staged_batches_store_what_the_row_statement_stores(engine):
    """A batch goes through a staging table (rows converted column by column); a row the database
    refused goes alone through SQLAlchemy's statement. Both write the same values, so a target
    written by either reads back identical and a re-read of it is all unchanged."""
    sink, frame = SqlSink(engine=engine), typed_rows(2_500)
    assert sink._stages
    staged = sink.upsert(TYPED_MAPPING, frame)
    assert len(staged.written) == 2_500
    first = stored(engine, "typed")
    with engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM typed")
    table = sink._table(TYPED_MAPPING)
    by_row = sink._write_rows(sink._statement(table, "id", False), table, "id", records(frame), False)
    assert len(by_row.written) == 2_500
    assert stored(engine, "typed") == first
    again = sink.upsert(TYPED_MAPPING, frame)
    assert again.written == [] and len(again.unchanged) == 2_500
    changed = frame.assign(name=frame["name"].where(frame.index != 7, "renamed"))
    assert sink.upsert(TYPED_MAPPING, changed).written == ["id00007"]
