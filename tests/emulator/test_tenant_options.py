"""Tenant settings a preflight check meets: objects not enabled, no custom fields."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from include.zuora_emulator import Emulator
from tests.emulator.conftest import Api

ORDERS = ["orders", "order-actions", "order-line-items"]


@pytest.fixture(scope="module")
def no_orders() -> Iterator[Api]:
    with Emulator(scale="tiny", disabled_objects=ORDERS) as emu:
        yield Api(emu)


@pytest.fixture(scope="module")
def no_custom() -> Iterator[Api]:
    with Emulator(scale="tiny", custom_fields=False) as emu:
        yield Api(emu)


@pytest.mark.parametrize(
    ("obj", "label"),
    [("orders", "Orders"), ("order-actions", "OrderAction"), ("order-line-items", "OrderLineItem")],
)
@pytest.mark.parametrize("by_key", [False, True])
def test_a_disabled_object_answers_400_not_enabled(no_orders, obj, label, by_key):
    path = f"/object-query/{obj}" + ("/whatever" if by_key else "")
    r = no_orders.get(path, [("fields[]", "id")])
    assert r.status_code == 400
    body = r.json()
    assert body["reasons"] == [{"code": 50000020, "message": f"{label} is not enabled for this tenant"}]
    assert body["requestId"]


def test_other_objects_stay_enabled(no_orders):
    assert no_orders.get("/object-query/accounts").status_code == 200
    assert no_orders.get("/object-query/subscriptions").status_code == 200
    health = no_orders.session.get(f"{no_orders.base}/_admin/health").json()
    assert health["disabled_objects"] == sorted(ORDERS) and health["custom_fields"] is True


def test_disabled_objects_are_settable_through_the_admin_route(fresh_api):
    api = fresh_api
    url = f"{api.base}/_admin/tenant"
    assert api.session.get(url).json() == {"disabled_objects": [], "custom_fields": True}
    r = api.session.put(url, json={"disabled_objects": ["orders"]})
    assert r.status_code == 200 and r.json()["disabled_objects"] == ["orders"]
    assert api.get("/object-query/orders").status_code == 400
    assert api.get("/object-query/order-actions").status_code == 200
    # expand[] into a disabled child is refused the same way.
    api.session.put(url, json={"disabled_objects": ["order-line-items"]})
    r = api.get("/object-query/orders", [("expand[]", "orderlineitems")])
    assert r.status_code == 400 and r.json()["reasons"][0]["code"] == 50000020
    api.session.put(url, json={"disabled_objects": []})
    assert api.get("/object-query/orders", [("expand[]", "orderlineitems")]).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {"disabled_objects": ["widgets"]},
        {"disabled_objects": "orders"},
        {"disabled_objects": ["orders"], "custom_fields": "no"},
        {"bogus": 1},
        [],
    ],
)
def test_bad_tenant_settings_are_refused(fresh_api, body):
    r = fresh_api.session.put(f"{fresh_api.base}/_admin/tenant", json=body)
    assert r.status_code == 400
    assert fresh_api.session.get(f"{fresh_api.base}/_admin/tenant").json()["disabled_objects"] == []


def test_unknown_disabled_object_is_refused_by_the_constructor():
    with pytest.raises(ValueError, match="widgets"):
        Emulator(scale="tiny", disabled_objects=["widgets"])


@pytest.mark.parametrize("name", ["crmAccountId__c", "CRMAccountId__c", "erpAccountId__c"])
def test_without_custom_fields_a_custom_field_is_an_invalid_field(no_custom, name):
    r = no_custom.get("/object-query/accounts", [("fields[]", f"id,{name}")])
    assert r.status_code == 400
    reason = r.json()["reasons"][0]
    assert reason["code"] == 50000027 and reason["message"] == f"Invalid fields parameter: {name}"
    assert no_custom.get("/object-query/accounts", [("filter[]", f"{name}.EQ:null")]).status_code == 400
    assert no_custom.get("/object-query/accounts", [("sort[]", f"{name}.ASC")]).status_code == 400


def test_without_custom_fields_records_show_only_zuoras_fields(no_custom):
    rec = no_custom.get("/object-query/accounts", [("includeNullFields", "true")]).json()["data"][0]
    assert "crmAccountId__c" not in rec and "accountNumber" in rec
    assert "crmAccountId__c" not in no_custom.truth("accounts")[0]


def test_custom_fields_are_settable_through_the_admin_route(fresh_api):
    api = fresh_api
    url = f"{api.base}/_admin/tenant"
    params = [("fields[]", "id,crmAccountId__c")]
    assert api.get("/object-query/accounts", params).status_code == 200
    assert api.session.put(url, json={"custom_fields": False}).json()["custom_fields"] is False
    assert api.get("/object-query/accounts", params).status_code == 400
    assert api.session.put(url, json={"custom_fields": True}).status_code == 200
    assert api.get("/object-query/accounts", params).status_code == 200


def test_mutate_sets_an_explicit_updated_date(fresh_api):
    api = fresh_api
    invoice = api.truth("invoices")[0]
    res = api.mutate(
        [{"op": "update", "object": "invoices", "ids": [invoice["id"]], "set": {"updatedDate": "2099-01-01T00:00:00Z"}}]
    )
    assert res[0]["ids"] == [invoice["id"]]
    got = api.get(f"/object-query/invoices/{invoice['id']}", [("fields[]", "id,updatedDate")]).json()
    assert got["updatedDate"] == "2098-12-31T16:00:00-08:00"
    newest = api.get("/object-query/invoices", [("filter[]", "updatedDate.GE:2099-01-01T00:00:00Z")]).json()["data"]
    assert [r["id"] for r in newest] == [invoice["id"]]
    r = api.session.post(
        f"{api.base}/_admin/mutate",
        json={"ops": [{"op": "update", "object": "invoices", "ids": [invoice["id"]], "set": {"updatedDate": "soon"}}]},
    )
    assert r.status_code == 400
