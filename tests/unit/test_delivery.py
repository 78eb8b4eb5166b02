"""Endpoint files and payload templates: what an HTTP target receives."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pandas as pd
import pytest
from zuora_etl.delivery import Endpoint, digest, endpoint_for, endpoints, endpoints_dir, idempotency_key, render
from zuora_etl.mapping import cached_mapping

INVOICE = {"id": "inv1", "invoice_number": "INV-1", "account_id": "a1", "status": "Posted",
           "invoice_date": date(2026, 1, 31), "due_date": None, "currency": "USD", "amount": Decimal("120.50"),
           "tax_amount": Decimal("0"), "balance": Decimal("20.5"),
           "updated_date": pd.Timestamp("2026-02-01 10:00:00")}  # fmt: skip
ITEMS = [{"id": "it1", "charge_name": "Seat", "charge_amount": Decimal("100.5"), "tax_amount": None,
          "quantity": Decimal("2"), "accounting_code": "4000", "service_start_date": date(2026, 1, 1),
          "service_end_date": date(2026, 1, 31)},
         {"id": "it2", "charge_name": "Fee", "charge_amount": Decimal("20"), "tax_amount": None, "quantity": None,
          "accounting_code": None, "service_start_date": None, "service_end_date": None}]  # fmt: skip


def test_the_default_invoice_payload_nests_its_items_with_typed_values():
    payload = render(endpoint_for("invoices").payload, INVOICE, {"invoice_items": ITEMS})
    invoice = payload["invoice"]
    assert invoice["number"] == "INV-1" and invoice["amount"] == 120.5 and invoice["date"] == "2026-01-31"
    assert invoice["due_date"] is None and invoice["external_id"] == "inv1"
    assert [(i["description"], i["amount"]) for i in invoice["items"]] == [("Seat", 100.5), ("Fee", 20.0)]


def test_text_templates_render_as_text_and_constants_stay():
    template = {"label": "Invoice {{ invoice_number }} ({{ currency }})", "source": "zuora", "n": 3}
    assert render(template, INVOICE) == {"label": "Invoice INV-1 (USD)", "source": "zuora", "n": 3}


def test_digest_follows_content_not_key_order():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1}) != digest({"a": 2, "b": [1, 2]})


def test_idempotency_key_is_derived_from_id_version_action_and_content():
    key = idempotency_key("invoices", "inv1", pd.Timestamp("2026-02-01 10:00:00"), "create", "ab" * 32)
    assert key == "zuora-invoices-inv1-20260201T100000Z-create-" + "ab" * 8
    assert key != idempotency_key("invoices", "inv1", pd.Timestamp("2026-02-01 10:00:01"), "create", "ab" * 32)


@pytest.mark.parametrize("name", sorted(endpoints()))
def test_every_shipped_endpoint_reads_only_mapped_columns(name):
    endpoint = endpoints()[name]
    children = {c: set(cached_mapping(c).columns) for c in endpoint.children}
    endpoint.check_columns(set(cached_mapping(name).columns), children)


def test_nested_objects_have_no_endpoint_and_unknown_ones_are_named(tmp_path):
    assert endpoint_for("invoice_items") is None and endpoint_for("credit_memo_items") is None
    (tmp_path / "invoices.yaml").write_text((endpoints_dir() / "invoices.yaml").read_text())
    with pytest.raises(ValueError, match="no HTTP endpoint for accounts"):
        endpoint_for("accounts", tmp_path)


def test_row_sends_every_mapped_column():
    payload = render({"all": "{{ row }}"}, INVOICE)
    assert payload["all"]["amount"] == 120.5 and payload["all"]["updated_date"] == "2026-02-01T10:00:00Z"


def test_a_payload_reading_an_unknown_column_is_refused():
    endpoint = Endpoint.model_validate({"object": "payments", "create": {"method": "POST", "endpoint": "/p"},
                                        "update": {"method": "PUT", "endpoint": "/p/{id}"},
                                        "payload": {"amount": "{{ amout }}"}})  # fmt: skip
    with pytest.raises(ValueError, match="amout"):
        endpoint.check_columns(set(cached_mapping("payments").columns), {})


def test_batching_needs_a_batch_endpoint():
    with pytest.raises(ValueError, match="batch_endpoint"):
        Endpoint.model_validate({"object": "payments", "create": {"method": "POST", "endpoint": "/p", "batch_size": 5},
                                 "update": {"method": "PUT", "endpoint": "/p/{id}"}, "payload": {}})  # fmt: skip
