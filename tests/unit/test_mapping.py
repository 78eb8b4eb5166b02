from __future__ import annotations

from datetime import date, datetime

import pandas as pd
import pytest
from zuora_etl.catalog import OBJECTS
from zuora_etl.mapping import MAPPINGS_DIR, Mapping, apply_mapping, load_mapping

BASE = {"id": {"source": "id"}, "updated_date": {"source": "updatedDate", "type": "datetime"}}


def mapping(**columns) -> Mapping:
    return Mapping.model_validate({"object": "invoices", "table": "invoices", "columns": {**BASE, **columns}})


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


@pytest.mark.parametrize("name", sorted(OBJECTS))
def test_a_default_mapping_ships_for_every_object(name):
    m = load_mapping(name)
    assert m.table == name and m.key == "id"
    assert m.columns["updated_date"].type == "datetime"
    assert set(m.source_fields()) == set(OBJECTS[name].fields)
    assert (MAPPINGS_DIR / f"{name}.yaml").exists()


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
    good, bad = apply_mapping(mapping(x={"source": "amount", "type": kind}),
                              frame({"id": "a", "updatedDate": "2026-01-01T00:00:00Z", "amount": raw}))  # fmt: skip
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
    good, bad = apply_mapping(mapping(x={"source": "amount", "type": kind}),
                              frame({"id": "a", "updatedDate": "2026-01-01T00:00:00Z", "amount": raw},
                                    {"id": "b", "updatedDate": "2026-01-01T00:00:00Z", "amount": None}))  # fmt: skip
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


def test_source_fields_are_case_insensitive():
    assert "crmAccountId__c" in Mapping.model_validate({
        "object": "accounts", "table": "a",
        "columns": {**BASE, "crm": {"source": "CRMAccountId__c"}},
    }).source_fields()  # fmt: skip
