"""The emulated tenant's objects: fields and types from Zuora's SDK, behaviour from the emulator.

Which fields an object has, and their types, come from `include/zuora_catalog.json`, generated
from Zuora's official SDK (`zuora-sdk`, `ExpandedX` models) by `scripts/generate_zuora_catalog.py`:
the one source of truth for Zuora's Object Query schema, shared with the ETL library. Relations
(`billTo` on order line items, `invoiceItems` on invoices...) are not fields: they are only named
by `expand[]`, and `fields[]` refuses them like any unknown name.

What is the emulator's own, and declared by hand below, is behaviour: which fields a filter may
use, the "number" the by-key route also accepts, which objects refuse an unfiltered request, the
expandable children and the Data Query table names. The emulated tenant's custom fields
(`crmAccountId__c`...) are tenant configuration, not Zuora's schema, and are declared apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

CATALOG_PATH = Path(__file__).resolve().parent.parent / "zuora_catalog.json"

# Field types. Datetimes are stored as UTC epoch seconds and rendered in the tenant's time zone.
STR, INT, NUM, BOOL, DATE, DATETIME = "str", "int", "num", "bool", "date", "datetime"

CATALOG_TYPES = {
    "string": STR,
    "datetime": DATETIME,
    "date": DATE,
    "integer": INT,
    "number": NUM,
    "boolean": BOOL,
}

SQL_TYPES = {
    STR: "TEXT",
    INT: "INTEGER",
    NUM: "REAL",
    BOOL: "INTEGER",
    DATE: "TEXT",
    DATETIME: "INTEGER",
}

ALWAYS_FILTERABLE = ("id", "updatedDate", "createdDate")


@dataclass(frozen=True)
class ObjectSpec:
    """One Object Query object."""

    name: str  # kebab-case plural, as in the URL
    fields: tuple[tuple[str, str], ...]  # Zuora's fields in the catalog's order, then custom fields
    filterable: frozenset[str] = frozenset()
    number_field: str | None = None  # the by-key endpoint also accepts this "number"
    filter_required: bool = False
    children: dict[str, tuple[str, str]] = field(default_factory=dict)  # expand name -> (object, fk)
    data_query_table: str = ""
    model: str = ""  # the SDK model, e.g. ExpandedInvoice
    relations: tuple[str, ...] = ()  # the SDK's relations (expand[] names), never fields
    custom_fields: frozenset[str] = frozenset()  # the tenant's custom fields among `fields`

    @property
    def table(self) -> str:
        return self.name.replace("-", "_")

    @property
    def label(self) -> str:
        """Zuora's object name, as in its messages: ExpandedOrderLineItem -> OrderLineItem."""
        return self.model.removeprefix("Expanded") or self.name

    @property
    def types(self) -> dict[str, str]:
        return dict(self.fields)

    @property
    def by_lower(self) -> dict[str, str]:
        """Field names are case-insensitive in requests."""
        return {name.lower(): name for name, _ in self.fields}

    def without_custom_fields(self) -> ObjectSpec:
        """This object on a tenant that defines no custom fields."""
        if not self.custom_fields:
            return self
        return replace(
            self,
            fields=tuple(f for f in self.fields if f[0] not in self.custom_fields),
            filterable=self.filterable - self.custom_fields,
            custom_fields=frozenset(),
        )


def load_catalog(path: Path = CATALOG_PATH) -> dict[str, dict]:
    """The catalog's objects: endpoint -> {"model", "fields": {name: type}, "relations": {...}}."""
    return json.loads(path.read_text(encoding="utf-8"))["objects"]


CATALOG = load_catalog()

# The emulated tenant's custom fields, per object: tenant configuration that Zuora's SDK cannot
# know. They are indexed on the tenant, so filterable (Zuora filters only indexed custom fields).
CUSTOM_FIELDS: dict[str, tuple[tuple[str, str], ...]] = {
    "accounts": (("crmAccountId__c", STR), ("erpAccountId__c", STR)),
}


def _spec(name: str, filterable: tuple[str, ...] = (), **kw) -> ObjectSpec:
    entry = CATALOG[name]
    standard = tuple((f, CATALOG_TYPES[t]) for f, t in entry["fields"].items())
    custom = CUSTOM_FIELDS.get(name, ())
    spec = ObjectSpec(
        name=name,
        fields=standard + custom,
        filterable=frozenset((*ALWAYS_FILTERABLE, *filterable)),
        model=entry["model"],
        relations=tuple(entry.get("relations", {})),
        custom_fields=frozenset(f for f, _ in custom),
        **kw,
    )
    unknown = (spec.filterable | {spec.number_field or "id"}) - set(spec.types)
    if unknown:  # a typo in the behaviour declarations below must not pass silently
        raise ValueError(f"{name}: behaviour declared for unknown fields {sorted(unknown)}")
    return spec


def _check_children(objects: dict[str, ObjectSpec]) -> None:
    for spec in objects.values():
        for expand, (child, fk) in spec.children.items():
            if fk not in objects[child].types:
                raise ValueError(f"{spec.name}: expand {expand} joins on {fk}, not a field of {child}")


OBJECTS: dict[str, ObjectSpec] = {
    s.name: s
    for s in [
        _spec(
            "accounts",
            ("accountNumber", "status", "name", "crmAccountId__c", "erpAccountId__c", "parentId"),
            number_field="accountNumber",
            children={
                "contacts": ("contacts", "accountId"),
                "subscriptions": ("subscriptions", "accountId"),
            },
            data_query_table="account",
        ),
        _spec("contacts", ("accountId", "workEmail"), data_query_table="contact"),
        _spec(
            "subscriptions",
            ("accountId", "status", "name", "originalId"),
            number_field="name",
            children={"rateplans": ("rate-plans", "subscriptionId")},
            data_query_table="subscription",
        ),
        _spec(
            "rate-plans",
            ("subscriptionId",),
            children={"rateplancharges": ("rate-plan-charges", "ratePlanId")},
            data_query_table="rateplan",
        ),
        _spec(
            "rate-plan-charges",
            ("ratePlanId", "subscriptionId", "chargeNumber"),
            number_field="chargeNumber",
            filter_required=True,
            children={"rateplanchargetiers": ("rate-plan-charge-tiers", "ratePlanChargeId")},
            data_query_table="rateplancharge",
        ),
        _spec(
            "rate-plan-charge-tiers",
            ("ratePlanChargeId",),
            filter_required=True,
            data_query_table="rateplanchargetier",
        ),
        _spec(
            "orders",
            ("orderNumber", "status", "accountId"),
            number_field="orderNumber",
            children={
                "orderactions": ("order-actions", "orderId"),
                "orderlineitems": ("order-line-items", "orderId"),
            },
            data_query_table="orders",
        ),
        _spec(
            "order-actions",
            ("orderId", "subscriptionId", "type"),
            data_query_table="orderaction",
        ),
        _spec("order-line-items", ("orderId", "itemState"), data_query_table="orderlineitem"),
        _spec(
            "invoices",
            ("accountId", "invoiceNumber", "status", "invoiceDate", "transferredToAccounting"),
            number_field="invoiceNumber",
            children={"invoiceitems": ("invoice-items", "invoiceId")},
            data_query_table="invoice",
        ),
        _spec(
            "invoice-items",
            ("invoiceId", "accountId", "subscriptionId"),
            filter_required=True,
            data_query_table="invoiceitem",
        ),
        _spec(
            "payments",
            ("accountId", "paymentNumber", "status", "transferredToAccounting"),
            number_field="paymentNumber",
            data_query_table="payment",
        ),
        _spec(
            "refunds",
            ("accountId", "refundNumber", "status", "transferredToAccounting"),
            number_field="refundNumber",
            data_query_table="refund",
        ),
        _spec(
            "credit-memos",
            ("accountId", "memoNumber", "status", "invoiceId", "transferredToAccounting"),
            number_field="memoNumber",
            children={"creditmemoitems": ("credit-memo-items", "creditMemoId")},
            data_query_table="creditmemo",
        ),
        _spec("credit-memo-items", ("creditMemoId",), data_query_table="creditmemoitem"),
        _spec(
            "debit-memos",
            ("accountId", "memoNumber", "status", "invoiceId", "transferredToAccounting"),
            number_field="memoNumber",
            children={"debitmemoitems": ("debit-memo-items", "debitMemoId")},
            data_query_table="debitmemo",
        ),
        _spec("debit-memo-items", ("debitMemoId",), data_query_table="debitmemoitem"),
        _spec("amendments", ("subscriptionId", "type", "status"), data_query_table="amendment"),
        _spec("products", ("name", "sKU"), number_field="sKU", data_query_table="product"),
    ]
}

_check_children(OBJECTS)

# The same objects on a tenant without custom fields (`Emulator(custom_fields=False)`).
OBJECTS_WITHOUT_CUSTOM_FIELDS: dict[str, ObjectSpec] = {
    name: spec.without_custom_fields() for name, spec in OBJECTS.items()
}

# The document types `POST /v1/action/update` accepts, and the object behind each.
ACTION_TYPES = {"Invoice": "invoices", "Payment": "payments", "Refund": "refunds"}
TRANSFERRED_VALUES = frozenset({"Processing", "Yes", "Error", "Ignore"})
MEMO_TRANSFERRED_VALUES = TRANSFERRED_VALUES | {"No"}
