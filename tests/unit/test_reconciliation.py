"""Reconciliation's rules on plain values (merge join, kinds, normalisation, period), its staged
sorted runs, and the SQL sink's streamed read and soft delete on real SQLite (and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa
from airflow.sdk import ObjectStoragePath
from zuora_etl import settings
from zuora_etl.conditions import parse_all
from zuora_etl.mapping import Mapping, cached_mapping
from zuora_etl.reconciliation import (
    Diff,
    Side,
    SortedRuns,
    classify,
    compared_columns,
    dedupe,
    merge_join,
    norm_instant,
    norm_value,
    period_of,
    read_sorted,
    resolve_target_only,
    resolve_zuora_only,
    selection_failure,
)
from zuora_etl.sinks.base import DELETED_COLUMN
from zuora_etl.sinks.sql import SqlSink

T1, T2 = "2026-11-03T10:00:00", "2026-11-04T08:30:00"


def s(i: str, updated: str | None = T1, *values: str | None, deleted: str | None = None) -> Side:
    return Side(i, updated, tuple(values), deleted=deleted)


@pytest.mark.parametrize(
    ("zuora", "target", "pairs"),
    [
        ([], [], []),
        (["a", "b"], ["a", "b"], [("a", "a"), ("b", "b")]),
        (["a", "c"], ["b"], [("a", None), (None, "b"), ("c", None)]),
        ([], ["a", "b"], [(None, "a"), (None, "b")]),
        (["a", "b"], [], [("a", None), ("b", None)]),
        (["b", "d", "e"], ["a", "d", "f"], [(None, "a"), ("b", None), ("d", "d"), ("e", None), (None, "f")]),
    ],
)
def test_merge_join_pairs_ids_of_two_ordered_streams(zuora, target, pairs):
    got = [(z.id if z else None, t.id if t else None) for z, t in merge_join(map(s, zuora), map(s, target))]
    assert got == pairs


@pytest.mark.parametrize(("zuora", "target"), [(["b", "a"], []), ([], ["a", "a"])])
def test_merge_join_refuses_a_stream_out_of_order(zuora, target):
    with pytest.raises(ValueError, match="not in id order"):
        list(merge_join(map(s, zuora), map(s, target)))


def test_dedupe_keeps_the_newest_of_an_id_read_twice():
    got = list(dedupe([s("a", T2, "new"), s("a", T1, "old"), s("b", T1), s("c", T1, "x"), s("c", T2, "y")]))
    assert [(r.id, r.values) for r in got] == [("a", ("new",)), ("b", ()), ("c", ("y",))]


@pytest.mark.parametrize(
    ("zuora", "target", "kind", "detail"),
    [
        (s("a", T1, "Posted", "10"), s("a", T1, "Posted", "10"), None, None),
        (s("a", T2, "Posted", "10"), s("a", T1, "Posted", "10"), "stale", f"target updated_date {T1}"),
        (s("a", T2), s("a", None), "stale", "target updated_date None"),
        (s("a", T1, "Posted", "10"), s("a", T1, "Posted", "12.5"), "mismatch", "balance: target 12.5, Zuora 10"),
        (s("a", T1, "Canceled", "10"), s("a", T1, "Posted", "10"), "mismatch", "status: target Posted, Zuora Canceled"),
        (s("a", T1), s("a", T2), "mismatch", "newer than Zuora's"),
        (s("a", T1), s("a", T1, deleted=T2), "missing", f"marks it deleted since {T2}"),
    ],
)
def test_classify(zuora, target, kind, detail):
    fields = ["status", "balance"][: len(zuora.values)]
    diff = classify(zuora, target, fields)
    assert (diff.kind if diff else None) == kind
    if detail:
        assert detail in diff.detail


def test_a_zuora_record_the_target_lacks_is_missing_or_compared_with_the_row_found():
    assert resolve_zuora_only(s("a"), None, []) == Diff("a", "missing", f"in Zuora (updated {T1}), not in the target")
    assert resolve_zuora_only(s("a", T2), s("a", T1), []).kind == "stale"
    assert resolve_zuora_only(s("a", T2), s("a", T2), []) is None


@pytest.mark.parametrize(
    ("zuora", "why", "kind", "since"),
    [
        (None, None, "extra", None),  # gone from Zuora
        (s("a", T2), "status is Canceled, not status.EQ:Posted", "extra", T2),  # out of the selection
        (s("a", T2), None, "stale", None),  # Zuora changed it after the period
        (s("a", T1), None, None, None),
    ],
)
def test_a_target_row_zuora_lacks_in_the_period(zuora, why, kind, since):
    diff = resolve_target_only(s("a", T1), zuora, why, [])
    assert (diff.kind if diff else None) == kind
    assert (diff.since if diff else None) == since


def test_a_row_already_marked_deleted_is_no_difference():
    assert resolve_target_only(s("a", deleted=T2), None, None, []) is None


@pytest.mark.parametrize(
    ("value", "kind", "text"),
    [
        (12345.67, "decimal", "12345.67"),
        (Decimal("12345.670000"), "decimal", "12345.67"),
        ("12345.670000", "decimal", "12345.67"),
        (0.0, "decimal", "0"),
        (Decimal("-0.000000"), "decimal", "0"),
        (100, "number", "100"),
        (1e-7, "decimal", "0"),
        (None, "decimal", None),
        (float("nan"), "decimal", None),
        ("Posted", "string", "Posted"),
        (True, "boolean", "true"),
        ("n/a", "decimal", "n/a"),
    ],
)
def test_norm_value(value, kind, text):
    assert norm_value(value, kind) == text


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("2026-11-03T02:00:00-08:00", "2026-11-03T10:00:00"),
        (datetime(2026, 11, 3, 10, 0, 0, 500000), "2026-11-03T10:00:00"),
        (pd.Timestamp("2026-11-03 10:00:00"), "2026-11-03T10:00:00"),
        ("2026-11-03 10:00:00.000000", "2026-11-03T10:00:00"),
        (None, None),
    ],
)
def test_norm_instant_is_utc_to_the_second(value, text):
    assert norm_instant(value) == text


def test_selection_failure_names_the_condition_a_record_fails():
    conditions = parse_all(["status.EQ:Posted"])
    assert selection_failure({"id": "a", "Status": "Posted"}, conditions) is None
    assert selection_failure({"id": "a", "status": "Canceled"}, conditions) == (
        "status is Canceled, not status.EQ:Posted"
    )


NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("params", "interval", "period"),
    [
        ({"period_start": "2026-10-01", "period_end": "2026-10-31"}, (None, None), ("2026-10-01", "2026-11-01")),
        ({"period_start": "2026-10-15"}, (None, None), ("2026-10-15", "2026-12-02T09:00")),
        ({"period_end": "2026-10-31"}, (None, None), ("2026-10-01", "2026-11-01")),
        ({}, ("2026-11-01T00:00:00+00:00", "2026-12-01T00:00:00+00:00"), ("2026-11-01", "2026-12-01")),
        ({}, (None, None), ("2026-11-01", "2026-12-01")),
        ({}, ("2026-12-02T09:00:00+00:00", "2026-12-02T09:00:00+00:00"), ("2026-11-01", "2026-12-01")),
    ],
)
def test_period_of(params, interval, period):
    lo, hi = period_of(params, interval, NOW)
    assert (lo, hi) == tuple(datetime.fromisoformat(p).replace(tzinfo=UTC) for p in period)


def test_a_period_ending_before_it_starts_is_refused():
    with pytest.raises(ValueError, match="not before"):
        period_of({"period_start": "2026-11-01", "period_end": "2026-10-01"}, (None, None), NOW)


def test_compared_columns_are_status_and_amounts():
    names = [c for c, _, _ in compared_columns(cached_mapping("invoices"))]
    assert "status" in names and {"amount", "balance", "tax_amount"} <= set(names)
    assert not {"id", "updated_date", "invoice_number", "invoice_date"} & set(names)
    assert compared_columns(cached_mapping("contacts")) == ()


def test_sorted_runs_read_back_in_id_order_newest_first_of_duplicates(tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "PART_ROWS", 3)  # several runs from a few records
    runs = SortedRuns(ObjectStoragePath(f"file://{tmp_path}"), "zuora", 1)
    records = [s(i, T1, str(n)) for n, i in enumerate(["e", "b", "h", "a", "g", "c", "f", "d", "b"])]
    runs.add([*records, s("b", T2, "latest")])
    runs.flush()
    assert len(runs.parts) == 4 and runs.rows == 10
    got = list(read_sorted(runs.parts, 1))
    assert [r.id for r in got] == list("abcdefgh")
    assert got[1].values == ("latest",)


MAPPING = Mapping.model_validate({
    "object": "invoices", "table": "invoices",
    "columns": {"id": {"source": "id"}, "updated_date": {"source": "updatedDate", "type": "datetime"},
                "amount": {"source": "amount", "type": "decimal"}, "status": {"source": "status"}},
})  # fmt: skip


@pytest.fixture(params=["sqlite", "postgresql"])
def sink(request, tmp_path):
    if request.param == "sqlite":
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'sink.db'}")
    else:
        engine = sa.create_engine(request.getfixturevalue("postgres_db").url)
    yield SqlSink(engine=engine)
    engine.dispose()


def test_sql_sink_streams_rows_by_key_in_chunks_and_marks_extras(sink):
    assert list(sink.iter_rows(MAPPING, ["amount"])) == []  # no table yet: nothing
    ids = ["b0", "a1", "c2", "a0", "B9", "c1"]
    frame = pd.DataFrame([{"id": i, "updated_date": datetime(2026, 11, 1 + n), "amount": n + 0.5, "status": "Posted"}
                          for n, i in enumerate(ids)])  # fmt: skip
    sink.upsert(MAPPING, frame)
    chunks = list(sink.iter_rows(MAPPING, ["amount", "status"], chunk=2))
    assert [len(c) for c in chunks] == [2, 2, 2]
    assert [r["id"] for c in chunks for r in c] == sorted(ids)  # byte order: "B9" first
    assert all(r[DELETED_COLUMN] is None for c in chunks for r in c)
    window = [
        r["id"] for c in sink.iter_rows(MAPPING, [], lo=datetime(2026, 11, 2), hi=datetime(2026, 11, 4)) for r in c
    ]
    assert window == ["a1", "c2"]
    parents = sink.iter_rows(MAPPING, [], parent=("status", ["Posted"]), chunk=4)
    assert sum(len(c) for c in parents) == 6
    assert set(sink.rows_by_key(MAPPING, ["amount"], ["a0", "zz"])) == {"a0"}

    gone = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    assert sink.set_deleted(MAPPING, {"a0": gone, "c1": gone}) == 2
    rows = sink.rows_by_key(MAPPING, [], ["a0", "c1", "b0"])
    assert rows["a0"][DELETED_COLUMN] == datetime(2026, 11, 20, 8, 0) and rows["b0"][DELETED_COLUMN] is None
    assert sink.set_deleted(MAPPING, {"a0": None}) == 1  # back in Zuora: mark cleared
    assert sink.rows_by_key(MAPPING, [], ["a0"])["a0"][DELETED_COLUMN] is None
    sink.upsert(MAPPING, frame.assign(amount=9.0, updated_date=datetime(2026, 12, 1)))  # a later load keeps the mark
    assert sink.rows_by_key(MAPPING, ["amount"], ["c1"])["c1"][DELETED_COLUMN] == datetime(2026, 11, 20, 8, 0)


def test_a_rest_target_refuses_reconciliation_saying_so(monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException
    from zuora_etl.sinks import sink_for

    monkeypatch.setenv("AIRFLOW_CONN_RECON_ERP_API", '{"conn_type": "http", "host": "http://127.0.0.1:9"}')
    sink = sink_for("recon_erp_api")
    assert type(sink).__name__ == "HttpSink"
    for call in (lambda: list(sink.iter_rows(MAPPING, [])), lambda: sink.set_deleted(MAPPING, {"a": None})):
        with pytest.raises(AirflowFailException, match=r"reconciliation of a REST target .* is not supported yet"):
            call()
