"""The Zuora objects in scope: Object Query endpoint, fields and their types, relations.

Fields and types come from `include/zuora_catalog.json`, generated from Zuora's official SDK by
`scripts/generate_zuora_catalog.py` (never typed by hand: a hand-typed list once agreed with our
emulator and not with Zuora). What is ours is behaviour: which objects refuse a request without a
filter, and how a document is flagged transferred to accounting.

This is *what* can be extracted; families choose among these objects and mappings among their
fields. Types drive mapping validation (every field is staged as text).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache

from . import INCLUDE_DIR

CATALOG_PATH = INCLUDE_DIR / "zuora_catalog.json"
STRING, INTEGER, NUMBER, DECIMAL, BOOLEAN, DATE, DATETIME = (
    "string",
    "integer",
    "number",
    "decimal",
    "boolean",
    "date",
    "datetime",
)
# Which Zuora field types a mapping column of each type can hold without loss. A `date` column on
# a datetime field (invoices.postedDate) would quarantine every record that has one.
HOLDS: dict[str, frozenset[str]] = {
    STRING: frozenset({STRING, DATETIME, DATE, INTEGER, NUMBER, BOOLEAN}),
    DATETIME: frozenset({DATETIME}),
    DATE: frozenset({DATE}),
    INTEGER: frozenset({INTEGER}),
    NUMBER: frozenset({INTEGER, NUMBER}),
    DECIMAL: frozenset({INTEGER, NUMBER}),
    BOOLEAN: frozenset({BOOLEAN}),
}
# Zuora's custom fields end in __c; they are tenant configuration, absent from the SDK.
CUSTOM_SUFFIX = "__c"

# Behaviour per object, from ../shared/ZUORA_API.md: objects that refuse a request without any
# filter[], and how each document type is flagged TransferredToAccounting.
FILTER_REQUIRED = {"invoice_items", "rate_plan_charges", "rate_plan_charge_tiers"}
ACTION_TYPES = {"invoices": "Invoice", "payments": "Payment", "refunds": "Refund"}  # POST /v1/action/update
MEMO_PATHS = {"credit_memos": "credit-memos", "debit_memos": "debit-memos"}  # PUT /v1/{path}/{id}
# The number people quote for a record (on an invoice PDF, in a support ticket), by which a replay
# finds it; a subscription's number is its `name`.
NUMBER_FIELDS = {
    "accounts": "accountNumber", "subscriptions": "name", "rate_plan_charges": "chargeNumber",
    "orders": "orderNumber", "order_line_items": "itemNumber", "invoices": "invoiceNumber",
    "payments": "paymentNumber", "refunds": "refundNumber", "credit_memos": "memoNumber", "debit_memos": "memoNumber",
}  # fmt: skip
# Records that are parts of another (an invoice's items, a subscription's rate plans): a replay of
# the whole brings its parts, by the field naming the whole.
PART_OF = {
    "contacts": ("accounts", "accountId"),
    "rate_plans": ("subscriptions", "subscriptionId"),
    "rate_plan_charges": ("rate_plans", "ratePlanId"),
    "rate_plan_charge_tiers": ("rate_plan_charges", "ratePlanChargeId"),
    "order_actions": ("orders", "orderId"),
    "order_line_items": ("orders", "orderId"),
    "invoice_items": ("invoices", "invoiceId"),
    "credit_memo_items": ("credit_memos", "creditMemoId"),
    "debit_memo_items": ("debit_memos", "debitMemoId"),
}
# Zuora ids are 32 lowercase hexadecimal characters; anything else a replay is given is a number.
ZUORA_ID_RE = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class ZuoraObject:
    name: str  # snake_case, as in DAG lists, Variables and default table names
    endpoint: str  # kebab-case, as in /object-query/{endpoint}
    model: str  # the SDK model, e.g. ExpandedInvoice
    fields: dict[str, str]  # Zuora field name -> type
    relations: dict[str, str]  # expand[] names -> SDK model; not fields
    filter_required: bool = False  # Zuora refuses a request without any filter[]
    action_type: str | None = None  # POST /v1/action/update type, for TransferredToAccounting
    memo_path: str | None = None  # PUT /v1/{memo_path}/{id}, for memos' transferredToAccounting
    number_field: str | None = None  # the record's human-facing number (invoiceNumber...)

    def field(self, name: str) -> str | None:
        """The catalog's spelling of a field (Zuora's names are case-insensitive), or None."""
        return self._lower().get(name.lower())

    def relation(self, name: str) -> str | None:
        return next((r for r in self.relations if r.lower() == name.lower()), None)

    def _lower(self) -> dict[str, str]:
        return {f.lower(): f for f in self.fields}


def is_custom(field: str) -> bool:
    return field.lower().endswith(CUSTOM_SUFFIX)


@cache
def _load() -> dict[str, ZuoraObject]:
    catalog = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    objects = {}
    for endpoint, spec in catalog["objects"].items():
        name = endpoint.replace("-", "_")
        objects[name] = ZuoraObject(
            name=name,
            endpoint=endpoint,
            model=spec["model"],
            fields=dict(spec["fields"]),
            relations=dict(spec["relations"]),
            filter_required=name in FILTER_REQUIRED,
            action_type=ACTION_TYPES.get(name),
            memo_path=MEMO_PATHS.get(name),
            number_field=NUMBER_FIELDS.get(name),
        )
    return objects


OBJECTS: dict[str, ZuoraObject] = _load()


def get_object(name: str) -> ZuoraObject:
    try:
        return OBJECTS[name]
    except KeyError:
        raise ValueError(f"unknown Zuora object {name!r}; known: {', '.join(sorted(OBJECTS))}") from None
