from __future__ import annotations

import re

import pytest

from include.zuora_emulator.schema import OBJECTS

ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|[+-]\d{2}:\d{2})$")


@pytest.mark.parametrize("obj", sorted(OBJECTS))
def test_every_object_lists_with_common_fields(api, obj):
    params = [("pageSize", "5")]
    if OBJECTS[obj].filter_required:
        params.append(("filter[]", "updatedDate.GE:2000-01-01T00:00:00Z"))
    r = api.get(f"/object-query/{obj}", params)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data, f"{obj} is empty in the small tenant"
    for rec in data:
        assert re.fullmatch(r"[0-9a-f]{32}", rec["id"])
        assert ISO.match(rec["createdDate"]) and ISO.match(rec["updatedDate"])


def test_default_page_size_is_10_and_default_order_is_updated_desc(api):
    data = api.get("/object-query/invoices").json()["data"]
    assert len(data) == 10
    keys = [(r["updatedDate"], r["id"]) for r in data]
    assert [k[1] for k in keys] == [k[1] for k in sorted(keys, key=lambda k: (api_epoch(k[0]), k[1]), reverse=True)]


def api_epoch(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.mark.parametrize("size", ["0", "100", "-1", "ten"])
def test_page_size_outside_1_to_99_is_400(api, size):
    r = api.get("/object-query/accounts", {"pageSize": size})
    assert r.status_code == 400
    assert r.json()["reasons"][0]["code"] == 50000021


def test_fields_are_case_insensitive_and_answered_in_zuora_order(api):
    data = api.get(
        "/object-query/accounts",
        [("fields[]", "NAME,id"), ("accounts.fields[]", "accountnumber")],
    ).json()["data"]
    assert list(data[0]) == ["id", "accountNumber", "name"]


def test_unknown_field_is_400(api):
    r = api.get("/object-query/accounts", {"fields[]": "id,bogus"})
    assert r.status_code == 400
    assert r.json()["reasons"][0] == {"code": 50000027, "message": "Invalid fields parameter: bogus"}


def test_null_fields_are_absent_unless_included(api):
    drafts = [("filter[]", "status.EQ:Draft"), ("fields[]", "id,postedDate,status")]
    plain = api.get("/object-query/invoices", drafts).json()["data"]
    assert plain and all("postedDate" not in r for r in plain)
    with_nulls = api.get("/object-query/invoices", [*drafts, ("includeNullFields", "true")]).json()["data"]
    assert all(r["postedDate"] is None for r in with_nulls)


def test_by_key_accepts_id_or_number_and_returns_bare_object(api):
    first = api.get("/object-query/invoices", {"fields[]": "id,invoiceNumber"}).json()["data"][0]
    by_id = api.get(f"/object-query/invoices/{first['id']}").json()
    by_number = api.get(f"/object-query/invoices/{first['invoiceNumber']}").json()
    assert by_id == by_number and by_id["id"] == first["id"] and "data" not in by_id
    assert api.get("/object-query/invoices/doesnotexist").status_code == 404


def test_expand_attaches_children_and_truncates_at_page_size(api):
    invoices = api.truth("invoices")
    items = api.truth("invoice-items")
    per_invoice: dict[str, int] = {}
    for item in items:
        per_invoice[item["invoiceId"]] = per_invoice.get(item["invoiceId"], 0) + 1
    big = max(per_invoice, key=per_invoice.get)
    assert per_invoice[big] >= 2
    r = api.get(
        f"/object-query/invoices/{big}",
        [
            ("expand[]", "invoiceitems"),
            ("invoiceitems.fields[]", "id,chargeAmount"),
            ("pageSize", "1"),
        ],
    )
    body = r.json()
    assert len(body["invoiceItems"]) == 1, "expanded arrays are cut at pageSize"
    assert set(body["invoiceItems"][0]) == {"id", "chargeAmount"}
    full = api.get(
        f"/object-query/invoices/{big}",
        [("expand[]", "invoiceitems"), ("pageSize", "99")],
    ).json()
    assert len(full["invoiceItems"]) == per_invoice[big]
    assert round(sum(i["chargeAmount"] + i["taxAmount"] for i in full["invoiceItems"]), 2) == pytest.approx(
        next(i for i in invoices if i["id"] == big)["amount"]
    )


def test_invalid_expand_is_400(api):
    assert api.get("/object-query/accounts", {"expand[]": "invoiceitems"}).status_code == 400


@pytest.mark.parametrize("obj", ["invoice-items", "rate-plan-charges", "rate-plan-charge-tiers"])
def test_filter_required_objects_refuse_a_bare_request(api, obj):
    r = api.get(f"/object-query/{obj}")
    assert r.status_code == 400
    assert "filter" in r.json()["reasons"][0]["message"]


def test_unknown_object_is_404(api):
    assert api.get("/object-query/widgets").status_code == 404


def test_rate_limit_and_concurrency_headers(api):
    r = api.get("/object-query/accounts")
    for header in (
        "RateLimit-Limit",
        "RateLimit-Remaining",
        "RateLimit-Reset",
        "Concurrency-Limit-Type",
        "Concurrency-Limit-Limit",
        "Concurrency-Limit-Remaining",
    ):
        assert header in r.headers
    assert int(r.headers["RateLimit-Remaining"]) < int(r.headers["RateLimit-Limit"])


def test_datetimes_render_in_the_tenant_zone_with_daylight_saving(api):
    stamps = {r["updatedDate"][-6:] for r in api.truth("invoices")}
    assert stamps == {"-08:00", "-07:00"}, "America/Los_Angeles changes offset with daylight saving"


def test_generated_amounts_add_up(api):
    items: dict[str, float] = {}
    for item in api.truth("invoice-items"):
        items[item["invoiceId"]] = items.get(item["invoiceId"], 0.0) + item["chargeAmount"] + item["taxAmount"]
    for inv in api.truth("invoices"):
        assert inv["amount"] == pytest.approx(items[inv["id"]], abs=0.011)


def test_generated_tenant_has_shared_seconds_across_a_page(api):
    seconds: dict[str, int] = {}
    for inv in api.truth("invoices"):
        seconds[inv["createdDate"]] = seconds.get(inv["createdDate"], 0) + 1
    assert max(seconds.values()) > 99, "a bill run must post more invoices in one second than one page holds"
    assert any(not name.isascii() for name in (a["name"] for a in api.truth("accounts")))
    assert {"Draft", "Posted", "Canceled"} <= {i["status"] for i in api.truth("invoices")}
    assert {"Processed"} < {p["status"] for p in api.truth("payments")}
