"""The Data Query bulk path as plain values: Object Query filters translated to Trino SQL (operators,
case-insensitive text, null, IN, window bounds, parent scope, quoting), and Data Query's CSV text
turned into Object Query's."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from zuora_etl.bulk import ParentScope, bulk_sql, converter, quote
from zuora_etl.catalog import BOOLEAN, DATETIME, INTEGER, NUMBER, get_object
from zuora_etl.windows import Window, parse_instant

INVOICES = get_object("invoices")
ITEMS = get_object("invoice_items")
ACCOUNTS = get_object("accounts")

ORDER = " ORDER BY invoice.updateddate ASC, invoice.id ASC"


def where(obj, filters, parent=None) -> str:
    sql = bulk_sql(obj, ["id"], filters, parent)
    return sql.split(" WHERE ", 1)[1].rsplit(" ORDER BY ", 1)[0] if " WHERE " in sql else ""


@pytest.mark.parametrize(
    ("condition", "predicate"),
    [
        ("status.EQ:Posted", "lower(invoice.status) = lower('Posted')"),
        ("status.NE:Draft", "lower(invoice.status) <> lower('Draft')"),
        ("invoiceNumber.SW:INV0_1%", "lower(invoice.invoicenumber) LIKE lower('INV0\\_1\\%%') ESCAPE '\\'"),
        ("status.IN:[Posted,Canceled]", "lower(invoice.status) IN (lower('Posted'), lower('Canceled'))"),
        ("id.IN:[8a1,8a2]", "lower(invoice.id) IN (lower('8a1'), lower('8a2'))"),
        ("status.EQ:null", "invoice.status IS NULL"),
        ("postedDate.NE:NULL", "invoice.posteddate IS NOT NULL"),
        ("amount.GE:100.50", "invoice.amount >= 100.50"),
        ("amount.LT:-3", "invoice.amount < -3"),
        ("invoiceDate.LE:2026-01-31", "invoice.invoicedate <= from_iso8601_date('2026-01-31')"),
        (
            "updatedDate.GE:2024-01-01T00:00:00+00:00",
            "invoice.updateddate >= from_iso8601_timestamp('2024-01-01T00:00:00Z')",
        ),
        (
            "updatedDate.LT:2025-03-13T14:30:46-07:00",
            "invoice.updateddate < from_iso8601_timestamp('2025-03-13T21:30:46Z')",
        ),
        ("crmAccountId__c.EQ:ABC", None),  # custom field: text, on the accounts table (below)
    ],
)
def test_each_object_query_filter_becomes_one_predicate(condition, predicate):
    if predicate is None:
        assert where(ACCOUNTS, [condition]) == "lower(account.crmaccountid__c) = lower('ABC')"
        return
    assert where(INVOICES, [condition]) == predicate


@pytest.mark.parametrize(
    ("value", "literal"),
    [
        ("O'Brien", "'O''Brien'"),
        ("x') OR 1=1 --", "'x'') OR 1=1 --'"),
        ("''", "''''''"),
        ("back\\slash", "'back\\slash'"),
    ],
)
def test_a_quote_in_a_value_is_doubled_so_the_literal_cannot_end_early(value, literal):
    assert quote(value) == literal
    assert where(INVOICES, [f"status.EQ:{value}"]) == f"lower(invoice.status) = lower({literal})"


def test_a_window_becomes_a_half_open_range_of_timestamps_and_the_order_is_updated_then_id():
    window = Window(parse_instant("2026-01-01T00:00:00Z"), parse_instant("2026-02-01T08:00:00-08:00"))
    sql = bulk_sql(INVOICES, ["id", "updatedDate", "amount", "postedDate"], window.filters())
    assert sql == (
        "SELECT invoice.id AS id, to_iso8601(invoice.updateddate) AS updateddate, invoice.amount AS amount, "
        "to_iso8601(invoice.posteddate) AS posteddate FROM invoice "
        "WHERE invoice.updateddate >= from_iso8601_timestamp('2026-01-01T00:00:00Z') "
        "AND invoice.updateddate < from_iso8601_timestamp('2026-02-01T16:00:00Z')" + ORDER
    )


def test_the_whole_history_window_still_has_bounds_and_no_filter_means_no_where():
    assert " WHERE " not in bulk_sql(INVOICES, ["id"], [])
    sql = bulk_sql(INVOICES, ["id"], Window(None, parse_instant("2026-01-01T00:00:00Z")).filters())
    assert "from_iso8601_timestamp('1970-01-01T00:00:00Z')" in sql


def test_a_parent_scope_is_a_subquery_on_the_parents_filters_window_included():
    window = Window(parse_instant("2026-01-01T00:00:00Z"), parse_instant("2026-02-01T00:00:00Z"))
    scope = ParentScope(INVOICES, "invoiceId", [*window.filters(), "status.EQ:Posted"])
    sql = bulk_sql(ITEMS, ["id", "updatedDate"], ["chargeAmount.GT:0"], scope)
    assert sql == (
        "SELECT invoiceitem.id AS id, to_iso8601(invoiceitem.updateddate) AS updateddate FROM invoiceitem "
        "WHERE invoiceitem.chargeamount > 0 AND invoiceitem.invoiceid IN (SELECT invoice.id FROM invoice "
        "WHERE invoice.updateddate >= from_iso8601_timestamp('2026-01-01T00:00:00Z') "
        "AND invoice.updateddate < from_iso8601_timestamp('2026-02-01T00:00:00Z') "
        "AND lower(invoice.status) = lower('Posted')) "
        "ORDER BY invoiceitem.updateddate ASC, invoiceitem.id ASC"
    )
    assert scope.filters == (*window.filters(), "status.EQ:Posted")  # frozen, hashable
    unscoped = bulk_sql(ITEMS, ["id"], [], ParentScope(INVOICES, "invoiceId"))
    assert "invoiceitem.invoiceid IN (SELECT invoice.id FROM invoice) ORDER BY" in unscoped


@pytest.mark.parametrize(
    ("obj", "fields", "filters", "error"),
    [
        (INVOICES, ["id"], ["updatedDate.GE:2024-01-01 00:00:00+00:00"], "ISO-8601 with 'T'"),
        (INVOICES, ["id"], ["updatedDate.GE:2024-01-01T00:00:00"], "an offset"),
        (INVOICES, ["id"], ["invoiceDate.GE:01/02/2024"], "YYYY-MM-DD"),
        (INVOICES, ["id"], ["amount.GT:12abc"], "not a number"),
        (INVOICES, ["id"], ["amount.GT:NaN"], "finite"),
        (INVOICES, ["id"], ["status.GT:null"], "null only goes with EQ or NE"),
        (INVOICES, ["id"], ["amount.SW:1"], "SW needs a text field"),
        (INVOICES, ["id"], ["status.IN:Posted"], "IN takes"),
        (INVOICES, ["id"], ["status.XX:Posted"], "not of the form"),
        (INVOICES, ["id"], ["autoPay.GT:true"], "EQ or NE"),
        (INVOICES, ["id"], ["autoPay.EQ:yes"], "true or false"),
        (INVOICES, ["id; DROP TABLE invoice"], [], "not a Zuora field name"),
        (INVOICES, [], [], "at least one field"),
        (replace(INVOICES, name="usages"), ["id"], [], "no Data Query table"),
    ],
)
def test_what_cannot_be_translated_faithfully_is_refused(obj, fields, filters, error):
    with pytest.raises(ValueError, match=error):
        bulk_sql(obj, fields, filters)


def test_booleans_compare_as_booleans():
    assert where(INVOICES, ["autoPay.EQ:TRUE"]) == "invoice.autopay = true"


# ---------- Data Query text -> Object Query text ----------
LA = ZoneInfo("America/Los_Angeles")


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        (DATETIME, "2025-03-21T03:24:15.000-07:00", "2025-03-21T03:24:15-07:00"),
        (DATETIME, "2025-03-21T10:24:15.999Z", "2025-03-21T10:24:15Z"),
        (DATETIME, "2025-03-21 03:24:15.000 America/Los_Angeles", "2025-03-21T03:24:15-07:00"),
        (DATETIME, "2025-01-21 03:24:15.000 America/Los_Angeles", "2025-01-21T03:24:15-08:00"),
        (DATETIME, "2025-01-21 03:24:15.000 UTC", "2025-01-21T03:24:15Z"),
        (DATETIME, "2025-01-21 03:24:15.000 +05:30", "2025-01-21T03:24:15+05:30"),
        # both 01:30 of a DST fall-back keep their own offset through to_iso8601's text
        (DATETIME, "2025-11-02T01:30:00.000-07:00", "2025-11-02T01:30:00-07:00"),
        (DATETIME, "2025-11-02T01:30:00.000-08:00", "2025-11-02T01:30:00-08:00"),
        (DATETIME, "not a time", "not a time"),  # kept as received: the mapping quarantines it
        (NUMBER, "199.950000", "199.95"),
        (NUMBER, "230.000000", "230.0"),
        (NUMBER, "230.0", "230.0"),
        (NUMBER, "-0.500000", "-0.5"),
        (NUMBER, "1.2345678E7", "12345678.0"),
        (INTEGER, "5", "5"),
        (INTEGER, "5.000000", "5"),
        (BOOLEAN, "true", "true"),
        (BOOLEAN, "FALSE", "false"),
    ],
)
def test_data_query_text_becomes_object_query_text(kind, text, expected):
    assert converter(kind)(text) == expected


def test_datetimes_can_be_rendered_in_a_given_zone():
    to_la = converter(DATETIME, LA)
    assert to_la("2025-07-01 10:00:00.000 UTC") == "2025-07-01T03:00:00-07:00"
    fixed = converter(DATETIME, timezone(timedelta(hours=-8)))
    assert fixed("2025-07-01T10:00:00.000Z") == "2025-07-01T02:00:00-08:00"
