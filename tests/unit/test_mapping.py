from __future__ import annotations

import re
from datetime import date, datetime

import pandas as pd
import pytest
from zuora_etl.catalog import OBJECTS, is_custom
from zuora_etl.families import load_families
from zuora_etl.mapping import Mapping, apply_mapping, load_mapping, mappings_dir

BASE = {"id": {"source": "id"}, "updated_date": {"source": "updatedDate", "type": "datetime"}}


def mapping(**columns) -> Mapping:
    return Mapping.model_validate({"object": "invoices", "table": "invoices", "columns": {**BASE, **columns}})


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


SHIPPED = sorted(p.stem for p in mappings_dir().glob("*.yaml"))


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_mapping_validates_against_zuoras_schema(name):
    m = load_mapping(name)
    assert m.table == name and m.key == "id" and m.columns["updated_date"].type == "datetime"
    spec = OBJECTS[m.object]
    for column, col in m.columns.items():
        if col.source and not is_custom(col.source):
            assert col.source in spec.fields, f"{name}.{column}: {col.source} is not a field of {spec.model}"
            assert col.source not in spec.relations


def test_every_family_object_has_its_mapping():
    for family in load_families():
        for o in family.objects:
            assert o.mapping_name in SHIPPED, f"{family.family}.{o.name} has no mapping"


@pytest.mark.parametrize(
    ("obj", "column", "message"),
    [
        (
            "invoices",
            {"source": "postedDate", "type": "date"},
            "postedDate is a datetime in Zuora (ExpandedInvoice), which a date column cannot hold; fix: type: datetime",
        ),
        (
            "order_line_items",
            {"source": "billTo"},
            "billTo is a relation of order_line_items (ExpandedContact) for "
            "expand[], not a field; fix: source: billToId",
        ),
        (
            "orders",
            {"source": "existingAccountId"},
            "existingAccountId is not a field of orders (ExpandedOrders); did you mean accountId?",
        ),
        ("rate_plan_charges", {"source": "price", "type": "decimal"}, "price is not a field of rate_plan_charges"),
        ("refunds", {"source": "paymentId"}, "paymentId is not a field of refunds (ExpandedRefund)"),
        ("invoices", {"source": "amount", "type": "integer"}, "amount is a number in Zuora"),
    ],
)
def test_the_five_wrong_defaults_and_other_mismatches_are_refused_with_the_fix(obj, column, message):
    with pytest.raises(ValueError, match=re.escape(f"column x: {message}")):
        Mapping.model_validate({"object": obj, "table": "t", "columns": {**BASE, "x": column}})


def test_custom_fields_stay_free_and_standard_ones_take_zuoras_spelling():
    custom = {"crm": {"source": "CRMAccountId__c"}, "k": {"source": "x__c", "type": "integer"}}
    columns = {**BASE, **custom, "n": {"source": "ACCOUNTNUMBER"}}
    m = Mapping.model_validate({"object": "accounts", "table": "a", "columns": columns})
    assert m.columns["crm"].source == "CRMAccountId__c" and m.columns["n"].source == "accountNumber"


def test_a_bad_mapping_file_names_the_file_the_column_and_the_fix(tmp_path):
    (tmp_path / "invoices.yaml").write_text(
        "object: invoices\ntable: invoices\ncolumns:\n  id: {source: id}\n"
        "  updated_date: {source: updatedDate, type: datetime}\n  posted: {source: postedDate, type: date}\n"
    )
    with pytest.raises(ValueError) as info:
        load_mapping("invoices", tmp_path)
    text = str(info.value)
    assert str(tmp_path / "invoices.yaml") in text and "column posted: postedDate" in text and "type: datetime" in text


@pytest.mark.parametrize(
    ("kind", "raw", "value"),
    [
        ("string", "Müller", "Müller"),
        ("integer", "7", 7),
        ("decimal", "3017.13", 3017.13),
        ("number", "-1.5e3", -1500.0),
        ("boolean", "true", True),
        ("boolean", "false", False),
        ("date", "2026-02-28", date(2026, 2, 28)),
    ],
)
def test_types_convert(kind, raw, value):
    good, bad = apply_mapping(mapping(x={"source": "raw__c", "type": kind}),
                              frame({"id": "a", "updatedDate": "2026-01-01T00:00:00Z", "raw__c": raw}))  # fmt: skip
    assert bad.empty and good.loc[0, "x"] == value


def test_datetimes_of_any_offset_become_naive_utc():
    good, _ = apply_mapping(mapping(), frame({"id": "a", "updatedDate": "2025-03-21T03:24:15-07:00"},
                                             {"id": "b", "updatedDate": "2025-11-02T01:30:00-08:00"}))  # fmt: skip
    assert list(good["updated_date"]) == [datetime(2025, 3, 21, 10, 24, 15), datetime(2025, 11, 2, 9, 30)]


@pytest.mark.parametrize(
    ("kind", "raw", "reason"),
    [
        ("integer", "7.5", "is not a valid integer"),
        ("decimal", "twelve", "is not a valid decimal"),
        ("boolean", "maybe", "is not a valid boolean"),
        ("date", "2026-02-30", "is not a valid date"),
        ("datetime", "2026-02-01 soon", "is not a valid datetime"),
    ],
)
def test_invalid_values_are_quarantined_with_the_reason_and_the_record(kind, raw, reason):
    good, bad = apply_mapping(mapping(x={"source": "raw__c", "type": kind}),
                              frame({"id": "a", "updatedDate": "2026-01-01T00:00:00Z", "raw__c": raw},
                                    {"id": "b", "updatedDate": "2026-01-01T00:00:00Z", "raw__c": None}))  # fmt: skip
    assert list(good["id"]) == ["b"]
    assert bad.loc[0, "record_id"] == "a" and reason in bad.loc[0, "reason"]
    assert raw in bad.loc[0, "payload"]


def test_required_values_value_maps_allowed_lists_and_constants():
    m = mapping(
        status={"source": "status", "values": {"Posted": "posted", "Draft": "draft"}, "allowed": ["posted", "draft"]},
        account={"source": "accountId", "required": True},
        source_system={"const": "zuora"},
    )
    good, bad = apply_mapping(m, frame(
        {"id": "a", "updatedDate": "2026-01-01T00:00:00Z", "status": "Posted", "accountId": "x"},
        {"id": "b", "updatedDate": "2026-01-01T00:00:00Z", "status": "Weird", "accountId": "x"},
        {"id": "c", "updatedDate": "2026-01-01T00:00:00Z", "status": "Draft", "accountId": None},
    ))  # fmt: skip
    assert good.to_dict("records") == [{"id": "a", "updated_date": datetime(2026, 1, 1), "status": "posted",
                                        "account": "x", "source_system": "zuora"}]  # fmt: skip
    reasons = dict(zip(bad["record_id"], bad["reason"], strict=True))
    assert reasons == {"b": "status: value not allowed", "c": "accountId: required value missing"}


def test_a_record_read_twice_keeps_its_newest_version():
    good, _ = apply_mapping(mapping(), frame({"id": "a", "updatedDate": "2026-01-02T00:00:00Z"},
                                             {"id": "a", "updatedDate": "2026-01-01T00:00:00Z"}))  # fmt: skip
    assert list(good["updated_date"]) == [datetime(2026, 1, 2)]


def test_missing_id_is_quarantined_without_a_record_id():
    _, bad = apply_mapping(mapping(), frame({"id": None, "updatedDate": "2026-01-01T00:00:00Z"}))
    assert bad.loc[0, "reason"] == "id: required value missing"


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"x": {"source": "nope"}}, "not a field of invoices"),
        ({"x": {"source": "amount", "const": 1}}, "exactly one"),
        ({"bad name": {"source": "amount"}}, "plain SQL identifier"),
        ({"updated_date": {"source": "createdDate", "type": "datetime"}}, "updated_date must map updatedDate"),
    ],
)
def test_invalid_mappings_are_refused(columns, message):
    with pytest.raises(ValueError, match=message):
        mapping(**columns)


def test_quarantine_names_the_failing_columns_and_carried_fields_ride_along():
    m = mapping(x={"source": "amount", "type": "decimal"}, s={"source": "status", "allowed": ["Posted"]})
    good, bad = apply_mapping(m, frame(
        {"id": "a", "updatedDate": "2026-01-01T00:00:00Z", "amount": "1", "status": "Posted", "accountId": "A"},
        {"id": "b", "updatedDate": "2026-01-01T00:00:00Z", "amount": "x", "status": "Draft", "accountId": "B"},
    ), carry=("accountId",))  # fmt: skip
    assert bad.loc[0, "columns"] == "amount,status" and list(good["__accountId"]) == ["A"]
