"""Changes made to Zuora between two syncs: updates (many in one second, across a page
boundary), inserts of parents with their children, and a renamed field."""

from __future__ import annotations

import time

from zuora_etl.catalog import get_object
from zuora_etl.families import Family

from include.zuora_emulator import Emulator
from include.zuora_emulator.schema import OBJECTS as EMULATED

# Fields changed on a few records so the sink must show a new value, not only a new updated_date.
VISIBLE_CHANGE = {
    "accounts": ("name", "Renamed Ünïcode Société GmbH"), "contacts": ("city", "Łódź"),
    "subscriptions": ("termType", "EVERGREEN"), "rate_plans": ("name", "Renamed plan"),
    "rate_plan_charges": ("accountingCode", "4999-Changed"), "rate_plan_charge_tiers": ("priceFormat", "Flat Fee"),
    "orders": ("description", "Amended ✓"), "order_actions": ("type", "UpdateProduct"),
    "order_line_items": ("itemState", "Complete"), "invoices": ("dueDate", "2031-01-31"),
    "invoice_items": ("accountingCode", "4999-Changed"), "payments": ("type", "External"),
    "refunds": ("reasonCode", "Changed"), "credit_memos": ("reasonCode", "Changed"),
    "credit_memo_items": ("chargeName", "Changed"), "debit_memos": ("reasonCode", "Changed"),
    "debit_memo_items": ("chargeName", "Changed"),
}  # fmt: skip
BULK = 150  # more than a page of 99 in one second


def _filter_values(filters: list[str]) -> dict:
    out = {}
    for f in filters:
        head, _, value = f.partition(":")
        field, _, op = head.rpartition(".")
        if op == "EQ":
            out[field] = value
    return out


def mutate(emu: Emulator, family: Family) -> dict:
    """Apply the changes in one transaction and one second; returns that second (epoch) and ids."""
    # A second after anything the last run wrote (marking bumps updatedDate), and before the next
    # run's window end (settle lag 0).
    time.sleep(2.1)
    second = int(time.time()) - 1
    ops, new_parent = [], {}
    for o in family.objects:
        endpoint = get_object(o.name).endpoint
        if o.parent:
            parent_id = new_parent[o.parent.object]
            ops.append({"op": "create", "object": endpoint,
                        "records": [{o.parent.key: parent_id, "chargeName": "New line"} if "item" in o.name
                                    else {o.parent.key: parent_id}] * 2})  # fmt: skip
            continue
        field, value = VISIBLE_CHANGE[o.name]
        filters = [emu.store.parse_filter(EMULATED[endpoint], f) for f in o.selection]
        matching = [r["id"] for r in emu.store.truth(endpoint, filters)]
        bulk = matching[:BULK]
        ops.append({"op": "update", "object": endpoint, "ids": bulk, "set": {}})
        ops.append({"op": "update", "object": endpoint, "ids": bulk[:5], "set": {field: value}})
        created = f"8a{'f' * 22}{len(ops):08x}"
        new_parent[o.name] = created
        ops.append({"op": "create", "object": endpoint, "records": [{"id": created, **_filter_values(o.selection)}]})
    results = emu.store.mutate(ops, at=second)
    return {"second": second, "results": results}
