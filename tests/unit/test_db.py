"""Table creation is safe when parallel tasks (two loads of one DAG run) do it at the same time."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa
from zuora_etl.db import add_missing_columns, create_tables
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
