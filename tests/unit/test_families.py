from __future__ import annotations

import pytest
import yaml
from zuora_etl.families import Family, load_families

CONTRACT = {
    "zuora_crm_accounts": ["accounts", "contacts"],
    "zuora_crm_subscriptions": ["subscriptions", "rate_plans", "rate_plan_charges", "rate_plan_charge_tiers"],
    "zuora_crm_orders": ["orders", "order_actions", "order_line_items"],
    "zuora_crm_invoices": ["invoices", "invoice_items"],
    "zuora_erp_invoices": ["invoices", "invoice_items"],
    "zuora_erp_payments": ["payments", "refunds"],
    "zuora_erp_memos": ["credit_memos", "credit_memo_items", "debit_memos", "debit_memo_items"],
}


def test_shipped_families_match_the_contract():
    families = {f.dag_id: f for f in load_families()}
    assert {d: [o.name for o in f.objects] for d, f in families.items()} == CONTRACT
    # ERP families read every record by updatedDate and decide per record (a delivered Posted
    # invoice that is canceled must still be read), so their scope is deliver_if, not a filter.
    assert families["zuora_erp_invoices"].get("invoices").selection == ["status.EQ:Posted"]
    assert families["zuora_erp_invoices"].get("invoices").filters == []
    assert families["zuora_erp_invoices"].get("invoice_items").parent.object == "invoices"
    assert families["zuora_erp_memos"].get("debit_memos").deliver_if == ["status.EQ:Posted"]
    assert families["zuora_erp_memos"].get("credit_memo_items").parent.object == "credit_memos"
    assert {o.deliver_if[0] for o in families["zuora_erp_payments"].objects} == {"status.EQ:Processed"}
    assert {f.sink for f in families.values()} == {"zuora_crm_sink", "zuora_erp_sink"}


BASE = {"family": "x", "dag_id": "zuora_x", "description": "d", "target": "crm"}


@pytest.mark.parametrize(
    ("objects", "message"),
    [
        ([{"name": "widgets"}], "unknown Zuora object"),
        ([{"name": "invoices", "filters": ["status = Posted"]}], "field.OP:value"),
        ([{"name": "invoices", "filters": ["updatedDate.GE:2025-01-01 00:00:00"]}], "never a space"),
        (
            [{"name": "invoice_items", "parent": {"object": "invoices", "key": "invoiceId"}}, {"name": "invoices"}],
            "listed before",
        ),
        ([{"name": "invoice_items", "mark_transferred": True}], "cannot flag"),
        ([{"name": "invoices"}, {"name": "invoices"}], "twice"),
        ([{"name": "invoices", "bogus": 1}], "Extra inputs"),
    ],
)
def test_invalid_family_is_refused_with_a_clear_reason(objects, message):
    with pytest.raises(ValueError, match=message):
        Family.model_validate({**BASE, "objects": objects})


def test_family_yaml_round_trip(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(yaml.safe_dump({**BASE, "objects": [{"name": "accounts"}]}))
    from zuora_etl.families import load_family

    assert load_family(path).sink == "zuora_crm_sink"
