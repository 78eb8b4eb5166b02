"""The emulator's objects follow the SDK-generated catalog, and the tenant is generated under
Zuora's real field names and types."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path

import pytest

from include.zuora_emulator.schema import (
    CATALOG_TYPES,
    CUSTOM_FIELDS,
    OBJECTS,
    OBJECTS_WITHOUT_CUSTOM_FIELDS,
)

ROOT = Path(__file__).resolve().parents[2]
CATALOG = json.loads((ROOT / "include" / "zuora_catalog.json").read_text(encoding="utf-8"))["objects"]
DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")
FILTERED = {"updatedDate.GE:2000-01-01T00:00:00Z"}


def _params(obj: str, *extra: tuple[str, str]) -> list[tuple[str, str]]:
    base = [("filter[]", f) for f in FILTERED] if OBJECTS[obj].filter_required else []
    return [*base, *extra]


def test_the_emulator_serves_exactly_the_catalogs_objects():
    assert set(OBJECTS) == set(CATALOG)


@pytest.mark.parametrize("obj", sorted(CATALOG))
def test_fields_and_types_equal_the_catalog_plus_declared_custom_fields(obj):
    spec = OBJECTS[obj]
    want = [(name, CATALOG_TYPES[kind]) for name, kind in CATALOG[obj]["fields"].items()]
    assert list(spec.fields) == want + list(CUSTOM_FIELDS.get(obj, ()))
    assert list(OBJECTS_WITHOUT_CUSTOM_FIELDS[obj].fields) == want
    assert spec.model == CATALOG[obj]["model"]
    assert not set(CATALOG[obj]["relations"]) & set(spec.types), "relations are not fields"
    assert spec.filterable <= set(spec.types) and {"id", "updatedDate"} <= spec.filterable


def test_custom_fields_are_the_tenants_own_on_accounts():
    assert {name for name, _ in CUSTOM_FIELDS["accounts"]} == {"crmAccountId__c", "erpAccountId__c"}
    assert OBJECTS["accounts"].custom_fields == {"crmAccountId__c", "erpAccountId__c"}
    assert not any(name.endswith("__c") for name in CATALOG["accounts"]["fields"])


RELATIONS = sorted((obj, rel) for obj, entry in CATALOG.items() for rel in entry["relations"])


@pytest.mark.parametrize(("obj", "relation"), RELATIONS)
def test_a_relation_in_fields_is_refused_like_an_unknown_name(api, obj, relation):
    r = api.get(f"/object-query/{obj}", _params(obj, ("fields[]", f"id,{relation}")))
    assert r.status_code == 400, r.text
    reason = r.json()["reasons"][0]
    assert reason["code"] == 50000027 and reason["message"].startswith("Invalid fields parameter")
    assert relation in reason["message"]


@pytest.mark.parametrize(
    ("obj", "name"),
    [
        ("rate-plan-charges", "price"),
        ("orders", "existingAccountId"),
        ("refunds", "paymentId"),
        ("order-line-items", "billTo"),
        ("invoices", "bogus"),
    ],
)
def test_names_zuora_does_not_have_are_refused(api, obj, name):
    r = api.get(f"/object-query/{obj}", _params(obj, ("fields[]", name)))
    assert r.status_code == 400 and "Invalid fields parameter" in r.json()["reasons"][0]["message"]


def test_the_fields_zuora_does_have_are_answered(api):
    rows = api.get("/object-query/order-line-items", [("fields[]", "id,billToId,orderId"), ("pageSize", "99")]).json()[
        "data"
    ]
    assert rows and all(set(r) == {"id", "billToId", "orderId"} for r in rows)
    tiers = api.get(
        "/object-query/rate-plan-charge-tiers", _params("rate-plan-charge-tiers", ("fields[]", "price"))
    ).json()["data"]
    assert tiers and all(isinstance(t["price"], float) for t in tiers)


def test_orders_carry_and_filter_by_account_id(api):
    orders = api.truth("orders")
    account = orders[0]["accountId"]
    assert account in {a["id"] for a in api.truth("accounts")}
    got = api.all("orders", [("filter[]", f"accountId.EQ:{account}"), ("fields[]", "id,accountId")])
    assert sorted(r["id"] for r in got) == sorted(o["id"] for o in orders if o["accountId"] == account)
    assert all(r["accountId"] == account for r in got)
    r = api.get("/object-query/orders", [("filter[]", f"existingAccountId.EQ:{account}")])
    assert r.status_code == 400 and r.json()["reasons"][0]["code"] == 50000027


def test_order_line_items_bill_to_a_contact_of_the_orders_account(api):
    account_of_order = {o["id"]: o["accountId"] for o in api.truth("orders")}
    account_of_contact = {c["id"]: c["accountId"] for c in api.truth("contacts")}
    items = api.truth("order-line-items")
    assert items
    for item in items:
        assert account_of_contact[item["billToId"]] == account_of_order[item["orderId"]]


def test_posted_date_is_a_datetime_in_the_tenant_offset_on_posted_invoices(api):
    rows = api.all("invoices", [("fields[]", "id,status,postedDate,createdDate"), ("pageSize", "99")])
    posted = [r for r in rows if r["status"] == "Posted"]
    assert posted and all(DATETIME.match(r["postedDate"]) for r in posted)
    assert {r["postedDate"][-6:] for r in posted} == {"-08:00", "-07:00"}
    assert all("postedDate" not in r for r in rows if r["status"] != "Posted")
    ordered = api.all("invoices", [("sort[]", "postedDate.ASC"), ("fields[]", "postedDate"), ("pageSize", "99")])
    stamps = [datetime.fromisoformat(r["postedDate"]) for r in ordered if "postedDate" in r]
    assert stamps == sorted(stamps), "postedDate sorts as an instant, whatever its offset"


@pytest.mark.parametrize("memo", ["credit-memos", "debit-memos"])
def test_memos_posted_on_is_a_datetime_for_posted_memos(api, memo):
    memos = api.truth(memo)
    assert any(m["status"] == "Posted" for m in memos)
    for m in memos:
        assert (m["postedOn"] is not None) == (m["status"] == "Posted")
        assert m["postedOn"] is None or DATETIME.match(m["postedOn"])


@pytest.mark.parametrize(
    ("obj", "gone"),
    [("rate-plan-charges", "price"), ("refunds", "paymentId"), ("orders", "existingAccountId")],
)
def test_truth_has_no_field_zuora_lacks(api, obj, gone):
    rows = api.truth(obj)
    assert rows and gone not in rows[0]
    assert list(rows[0]) == [name for name, _ in OBJECTS[obj].fields]


def test_fields_the_generator_leaves_null_are_absent_unless_asked(api):
    account = api.get("/object-query/accounts", [("pageSize", "1")]).json()["data"][0]
    full = api.get("/object-query/accounts", [("pageSize", "1"), ("includeNullFields", "true")]).json()["data"][0]
    assert set(full) == set(OBJECTS["accounts"].types)
    assert set(account) < set(full) and all(full[k] is None for k in set(full) - set(account))
