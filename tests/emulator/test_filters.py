from __future__ import annotations

from datetime import datetime

import pytest


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def invoices(shared_emulator):
    return shared_emulator.store.truth("invoices")


@pytest.mark.parametrize(
    ("op", "check"),
    [
        ("EQ", lambda v, x: v == x),
        ("NE", lambda v, x: v != x),
        ("LT", lambda v, x: v < x),
        ("GT", lambda v, x: v > x),
        ("LE", lambda v, x: v <= x),
        ("GE", lambda v, x: v >= x),
    ],
)
def test_datetime_operators_select_exactly_the_matching_records(api, invoices, op, check):
    pivot = sorted(invoices, key=lambda r: r["updatedDate"])[len(invoices) // 2]["updatedDate"]
    got = api.all(
        "invoices",
        [
            ("filter[]", f"updatedDate.{op}:{pivot}"),
            ("fields[]", "id"),
            ("pageSize", "99"),
        ],
    )
    want = {r["id"] for r in invoices if check(epoch(r["updatedDate"]), epoch(pivot))}
    assert {r["id"] for r in got} == want and len(got) == len(want)


def test_datetime_filter_accepts_any_offset_for_the_same_instant(api, invoices):
    pivot = invoices[0]["updatedDate"]
    utc = datetime.fromisoformat(pivot).astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")
    a = api.all(
        "invoices",
        [
            ("filter[]", f"updatedDate.GE:{pivot}"),
            ("fields[]", "id"),
            ("pageSize", "99"),
        ],
    )
    b = api.all(
        "invoices",
        [("filter[]", f"updatedDate.GE:{utc}"), ("fields[]", "id"), ("pageSize", "99")],
    )
    assert {r["id"] for r in a} == {r["id"] for r in b}


def test_in_sw_and_case_insensitive_string_compare(api, invoices):
    numbers = [invoices[0]["invoiceNumber"], invoices[5]["invoiceNumber"]]
    got = api.all(
        "invoices",
        [("filter[]", f"invoiceNumber.IN:[{numbers[0].lower()},{numbers[1]}]")],
    )
    assert sorted(r["invoiceNumber"] for r in got) == sorted(numbers)
    posted = api.all(
        "invoices",
        [("filter[]", "status.EQ:posted"), ("fields[]", "id"), ("pageSize", "99")],
    )
    assert len(posted) == sum(r["status"] == "Posted" for r in invoices)
    sw = api.all(
        "invoices",
        [("filter[]", "invoiceNumber.SW:INV0000001"), ("fields[]", "invoiceNumber")],
    )
    assert sw and all(r["invoiceNumber"].startswith("INV0000001") for r in sw)


def test_repeated_filters_are_anded(api, invoices):
    pivot = sorted(invoices, key=lambda r: r["updatedDate"])[len(invoices) // 3]["updatedDate"]
    got = api.all(
        "invoices",
        [
            ("filter[]", "status.EQ:Posted"),
            ("filter[]", f"updatedDate.GE:{pivot}"),
            ("pageSize", "99"),
        ],
    )
    want = {r["id"] for r in invoices if r["status"] == "Posted" and epoch(r["updatedDate"]) >= epoch(pivot)}
    assert {r["id"] for r in got} == want


def test_eq_null_and_ne_null(api, invoices):
    null = api.all(
        "invoices",
        [
            ("filter[]", "transferredToAccounting.NE:null"),
            ("fields[]", "id"),
            ("pageSize", "99"),
        ],
    )
    assert len(null) == len(invoices)
    accounts = api.truth("accounts")
    missing = api.all("accounts", [("filter[]", "crmAccountId__c.EQ:null"), ("fields[]", "id")])
    assert {r["id"] for r in missing} == {a["id"] for a in accounts if a["crmAccountId__c"] is None}
    assert missing, "the tenant has accounts without a CRM id"


def test_custom_field_filter_is_case_insensitive_on_the_name(api):
    account = next(a for a in api.truth("accounts") if a["crmAccountId__c"])
    got = api.all("accounts", [("filter[]", f"CRMAccountId__c.EQ:{account['crmAccountId__c']}")])
    assert [r["id"] for r in got] == [account["id"]]


def test_date_filter_takes_unquoted_dates(api, invoices):
    got = api.all(
        "invoices",
        [
            ("filter[]", "invoiceDate.GE:2026-01-01"),
            ("fields[]", "id"),
            ("pageSize", "99"),
        ],
    )
    assert {r["id"] for r in got} == {r["id"] for r in invoices if r["invoiceDate"] >= "2026-01-01"}


@pytest.mark.parametrize(
    "flt",
    [
        "updatedDate.GE:2025-03-13 14:30:46",  # space instead of T: Zuora's bulk APIs would ignore it
        "updatedDate.GE:yesterday",
        "amount.GE:1",  # not filterable
        "updatedDate.XX:2025-01-01T00:00:00Z",
        "updatedDate",
        "invoiceDate.GE:2026/01/01",
        "status.IN:Posted",
        "status.LT:null",
    ],
)
def test_invalid_filters_are_400_with_zuora_error_shape(api, flt):
    r = api.get("/object-query/invoices", [("filter[]", flt)])
    assert r.status_code == 400
    body = r.json()
    assert body["reasons"][0]["code"] == 50000027 and body["requestId"]


def test_unencoded_plus_in_an_offset_is_refused_not_misread(api):
    # `+` in a query string means a space; a client that forgets %2B must hear about it.
    r = api.session.get(
        f"{api.base}/object-query/invoices?filter[]=updatedDate.GE:2025-03-13T14:30:46+02:00",
        headers={"Authorization": f"Bearer {api.token}"},
    )
    assert r.status_code == 400


def test_sort_asc_and_desc_break_ties_by_id(api, invoices):
    asc = api.all(
        "invoices",
        [
            ("sort[]", "updatedDate.ASC"),
            ("fields[]", "id,updatedDate"),
            ("pageSize", "99"),
        ],
    )
    assert [r["id"] for r in asc] == [
        r["id"] for r in sorted(invoices, key=lambda r: (epoch(r["updatedDate"]), r["id"]))
    ]
    desc = api.all(
        "invoices",
        [("sort[]", "amount.DESC"), ("fields[]", "id,amount"), ("pageSize", "99")],
    )
    assert [r["id"] for r in desc] == [
        r["id"] for r in sorted(invoices, key=lambda r: (r["amount"], r["id"]), reverse=True)
    ]


def test_sort_on_a_nullable_field_pages_completely(api, invoices):
    got = api.all(
        "invoices",
        [("sort[]", "postedDate.ASC"), ("fields[]", "id"), ("pageSize", "37")],
    )
    assert sorted(r["id"] for r in got) == sorted(r["id"] for r in invoices)


@pytest.mark.parametrize("sort", ["updatedDate", "bogus.ASC", "updatedDate.UP"])
def test_invalid_sort_is_400(api, sort):
    assert api.get("/object-query/invoices", {"sort[]": sort}).status_code == 400
