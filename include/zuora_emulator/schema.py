"""The emulated tenant's objects: fields, types, filterable fields, keys and expandable children.

This is the emulator's own picture of Zuora, kept apart from the ETL library's catalog on purpose:
sharing one would hide any mismatch between what the client asks for and what Zuora offers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Field types. Datetimes are stored as UTC epoch seconds and rendered in the tenant's time zone.
STR, INT, NUM, BOOL, DATE, DATETIME = "str", "int", "num", "bool", "date", "datetime"

SQL_TYPES = {
    STR: "TEXT",
    INT: "INTEGER",
    NUM: "REAL",
    BOOL: "INTEGER",
    DATE: "TEXT",
    DATETIME: "INTEGER",
}

COMMON = (("id", STR), ("createdDate", DATETIME), ("updatedDate", DATETIME))


@dataclass(frozen=True)
class ObjectSpec:
    """One Object Query object."""

    name: str  # kebab-case plural, as in the URL
    fields: tuple[tuple[str, str], ...]
    filterable: frozenset[str] = frozenset()
    number_field: str | None = None  # the by-key endpoint also accepts this "number"
    filter_required: bool = False
    children: dict[str, tuple[str, str]] = field(default_factory=dict)  # expand name -> (object, fk)
    data_query_table: str = ""

    @property
    def table(self) -> str:
        return self.name.replace("-", "_")

    @property
    def types(self) -> dict[str, str]:
        return dict(self.fields)

    @property
    def by_lower(self) -> dict[str, str]:
        """Field names are case-insensitive in requests."""
        return {name.lower(): name for name, _ in self.fields}


def _spec(name: str, fields: list[tuple[str, str]], filterable: tuple[str, ...] = (), **kw) -> ObjectSpec:
    all_fields = COMMON + tuple(fields)
    return ObjectSpec(
        name=name,
        fields=all_fields,
        filterable=frozenset(("id", "updatedDate", "createdDate", *filterable)),
        **kw,
    )


MEMO_FIELDS = [
    ("accountId", STR),
    ("invoiceId", STR),
    ("memoNumber", STR),
    ("status", STR),
    ("memoDate", DATE),
    ("currency", STR),
    ("totalAmount", NUM),
    ("taxAmount", NUM),
    ("balance", NUM),
    ("reasonCode", STR),
    ("transferredToAccounting", STR),
]
MEMO_ITEM_FIELDS = [
    ("invoiceItemId", STR),
    ("chargeName", STR),
    ("sku", STR),
    ("unitOfMeasure", STR),
    ("amount", NUM),
    ("taxAmount", NUM),
    ("unitPrice", NUM),
    ("quantity", NUM),
    ("serviceStartDate", DATE),
    ("serviceEndDate", DATE),
]

OBJECTS: dict[str, ObjectSpec] = {
    s.name: s
    for s in [
        _spec(
            "accounts",
            [
                ("accountNumber", STR),
                ("name", STR),
                ("status", STR),
                ("currency", STR),
                ("billCycleDay", INT),
                ("paymentTerm", STR),
                ("autoPay", BOOL),
                ("batch", STR),
                ("balance", NUM),
                ("creditBalance", NUM),
                ("mrr", NUM),
                ("lastInvoiceDate", DATE),
                ("parentId", STR),
                ("billToId", STR),
                ("soldToId", STR),
                ("crmAccountId__c", STR),
                ("erpAccountId__c", STR),
            ],
            (
                "accountNumber",
                "status",
                "name",
                "crmAccountId__c",
                "erpAccountId__c",
                "parentId",
            ),
            number_field="accountNumber",
            children={
                "contacts": ("contacts", "accountId"),
                "subscriptions": ("subscriptions", "accountId"),
            },
            data_query_table="account",
        ),
        _spec(
            "contacts",
            [
                ("accountId", STR),
                ("firstName", STR),
                ("lastName", STR),
                ("workEmail", STR),
                ("city", STR),
                ("state", STR),
                ("country", STR),
            ],
            ("accountId", "workEmail"),
            data_query_table="contact",
        ),
        _spec(
            "subscriptions",
            [
                ("accountId", STR),
                ("invoiceOwnerId", STR),
                ("originalId", STR),
                ("name", STR),
                ("status", STR),
                ("version", INT),
                ("termType", STR),
                ("termStartDate", DATE),
                ("termEndDate", DATE),
                ("autoRenew", BOOL),
                ("cMRR", NUM),
            ],
            ("accountId", "status", "name", "originalId"),
            number_field="name",
            children={"rateplans": ("rate-plans", "subscriptionId")},
            data_query_table="subscription",
        ),
        _spec(
            "rate-plans",
            [("subscriptionId", STR), ("name", STR), ("productRatePlanId", STR)],
            ("subscriptionId",),
            children={"rateplancharges": ("rate-plan-charges", "ratePlanId")},
            data_query_table="rateplan",
        ),
        _spec(
            "rate-plan-charges",
            [
                ("ratePlanId", STR),
                ("subscriptionId", STR),
                ("name", STR),
                ("chargeNumber", STR),
                ("chargeType", STR),
                ("chargeModel", STR),
                ("billingPeriod", STR),
                ("effectiveStartDate", DATE),
                ("effectiveEndDate", DATE),
                ("chargedThroughDate", DATE),
                ("mRR", NUM),
                ("tCV", NUM),
                ("price", NUM),
                ("quantity", NUM),
                ("uOM", STR),
                ("accountingCode", STR),
            ],
            ("ratePlanId", "subscriptionId", "chargeNumber"),
            number_field="chargeNumber",
            filter_required=True,
            children={"rateplanchargetiers": ("rate-plan-charge-tiers", "ratePlanChargeId")},
            data_query_table="rateplancharge",
        ),
        _spec(
            "rate-plan-charge-tiers",
            [
                ("ratePlanChargeId", STR),
                ("tier", INT),
                ("startingUnit", NUM),
                ("endingUnit", NUM),
                ("price", NUM),
                ("priceFormat", STR),
            ],
            ("ratePlanChargeId",),
            filter_required=True,
            data_query_table="rateplanchargetier",
        ),
        _spec(
            "orders",
            [
                ("orderNumber", STR),
                ("orderDate", DATE),
                ("status", STR),
                ("existingAccountId", STR),
                ("description", STR),
            ],
            ("orderNumber", "status", "existingAccountId"),
            number_field="orderNumber",
            children={
                "orderactions": ("order-actions", "orderId"),
                "orderlineitems": ("order-line-items", "orderId"),
            },
            data_query_table="orders",
        ),
        _spec(
            "order-actions",
            [
                ("orderId", STR),
                ("subscriptionId", STR),
                ("type", STR),
                ("sequence", INT),
            ],
            ("orderId", "subscriptionId", "type"),
            data_query_table="orderaction",
        ),
        _spec(
            "order-line-items",
            [
                ("orderId", STR),
                ("itemNumber", STR),
                ("itemName", STR),
                ("itemState", STR),
                ("itemType", STR),
                ("amount", NUM),
                ("quantity", NUM),
                ("listPrice", NUM),
                ("billTo", STR),
            ],
            ("orderId", "itemState"),
            data_query_table="orderlineitem",
        ),
        _spec(
            "invoices",
            [
                ("accountId", STR),
                ("billToContactId", STR),
                ("invoiceNumber", STR),
                ("status", STR),
                ("invoiceDate", DATE),
                ("dueDate", DATE),
                ("postedDate", DATE),
                ("currency", STR),
                ("amount", NUM),
                ("amountWithoutTax", NUM),
                ("taxAmount", NUM),
                ("balance", NUM),
                ("paymentAmount", NUM),
                ("creditMemoAmount", NUM),
                ("refundAmount", NUM),
                ("transferredToAccounting", STR),
            ],
            (
                "accountId",
                "invoiceNumber",
                "status",
                "invoiceDate",
                "transferredToAccounting",
            ),
            number_field="invoiceNumber",
            children={"invoiceitems": ("invoice-items", "invoiceId")},
            data_query_table="invoice",
        ),
        _spec(
            "invoice-items",
            [
                ("invoiceId", STR),
                ("accountId", STR),
                ("subscriptionId", STR),
                ("ratePlanChargeId", STR),
                ("chargeName", STR),
                ("sKU", STR),
                ("uOM", STR),
                ("chargeAmount", NUM),
                ("taxAmount", NUM),
                ("unitPrice", NUM),
                ("quantity", NUM),
                ("balance", NUM),
                ("serviceStartDate", DATE),
                ("serviceEndDate", DATE),
                ("accountingCode", STR),
            ],
            ("invoiceId", "accountId", "subscriptionId"),
            filter_required=True,
            data_query_table="invoiceitem",
        ),
        _spec(
            "payments",
            [
                ("accountId", STR),
                ("paymentNumber", STR),
                ("status", STR),
                ("effectiveDate", DATE),
                ("currency", STR),
                ("type", STR),
                ("amount", NUM),
                ("appliedAmount", NUM),
                ("unappliedAmount", NUM),
                ("refundAmount", NUM),
                ("transferredToAccounting", STR),
            ],
            ("accountId", "paymentNumber", "status", "transferredToAccounting"),
            number_field="paymentNumber",
            data_query_table="payment",
        ),
        _spec(
            "refunds",
            [
                ("accountId", STR),
                ("paymentId", STR),
                ("refundNumber", STR),
                ("status", STR),
                ("refundDate", DATE),
                ("type", STR),
                ("reasonCode", STR),
                ("amount", NUM),
                ("transferredToAccounting", STR),
            ],
            ("accountId", "refundNumber", "status", "transferredToAccounting"),
            number_field="refundNumber",
            data_query_table="refund",
        ),
        _spec(
            "credit-memos",
            MEMO_FIELDS,
            (
                "accountId",
                "memoNumber",
                "status",
                "invoiceId",
                "transferredToAccounting",
            ),
            number_field="memoNumber",
            children={"creditmemoitems": ("credit-memo-items", "creditMemoId")},
            data_query_table="creditmemo",
        ),
        _spec(
            "credit-memo-items",
            [("creditMemoId", STR), *MEMO_ITEM_FIELDS],
            ("creditMemoId",),
            data_query_table="creditmemoitem",
        ),
        _spec(
            "debit-memos",
            MEMO_FIELDS,
            (
                "accountId",
                "memoNumber",
                "status",
                "invoiceId",
                "transferredToAccounting",
            ),
            number_field="memoNumber",
            children={"debitmemoitems": ("debit-memo-items", "debitMemoId")},
            data_query_table="debitmemo",
        ),
        _spec(
            "debit-memo-items",
            [("debitMemoId", STR), *MEMO_ITEM_FIELDS],
            ("debitMemoId",),
            data_query_table="debitmemoitem",
        ),
        _spec(
            "amendments",
            [
                ("subscriptionId", STR),
                ("name", STR),
                ("type", STR),
                ("status", STR),
                ("effectiveDate", DATE),
                ("code", STR),
            ],
            ("subscriptionId", "type", "status"),
            data_query_table="amendment",
        ),
        _spec(
            "products",
            [
                ("name", STR),
                ("sKU", STR),
                ("category", STR),
                ("description", STR),
                ("effectiveStartDate", DATE),
                ("effectiveEndDate", DATE),
            ],
            ("name", "sKU"),
            number_field="sKU",
            data_query_table="product",
        ),
    ]
}

# The document types `POST /v1/action/update` accepts, and the object behind each.
ACTION_TYPES = {"Invoice": "invoices", "Payment": "payments", "Refund": "refunds"}
TRANSFERRED_VALUES = frozenset({"Processing", "Yes", "Error", "Ignore"})
MEMO_TRANSFERRED_VALUES = TRANSFERRED_VALUES | {"No"}
