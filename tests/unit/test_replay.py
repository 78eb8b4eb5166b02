"""The replay's pure pieces: params checked, ids told from numbers, what comes with what."""

from __future__ import annotations

import pytest
from zuora_etl.families import get_family
from zuora_etl.replay import parse_request, replay_parents, split_values

ID = "8a0043979841a1ff730ef64bd54773b4"


def test_ids_and_numbers_are_told_apart():
    assert split_values([ID, "INV00000123", "A-S00000001"]) == ([ID], ["INV00000123", "A-S00000001"])


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"family": "erp_invoices", "object": "payments", "ids": [ID]}, "not an object of family erp_invoices"),
        ({"family": "erp_nothing", "object": "invoices", "ids": [ID]}, "unknown family"),
        ({"family": "erp_invoices", "object": "invoices", "ids": []}, "nothing to replay"),
    ],
)
def test_wrong_params_are_refused_naming_the_fix(params, message):
    with pytest.raises(ValueError, match=message):
        parse_request(params)


def test_ids_may_come_as_one_line_or_a_list_and_are_deduplicated():
    request = parse_request({"family": "erp_invoices", "object": "invoices", "ids": f"{ID}, INV1\nINV1"})
    assert request.values == (ID, "INV1") and not request.dead_letters
    assert parse_request({"family": "crm_invoices", "object": "invoices", "dead_letters": True}).values == ()


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("erp_invoices", {"invoice_items": ("invoices", "invoiceId")}),
        ("crm_accounts", {"contacts": ("accounts", "accountId")}),
        ("crm_subscriptions", {"rate_plans": ("subscriptions", "subscriptionId"),
                               "rate_plan_charges": ("rate_plans", "ratePlanId"),
                               "rate_plan_charge_tiers": ("rate_plan_charges", "ratePlanChargeId")}),
        ("erp_payments", {}),
    ],
)  # fmt: skip
def test_parts_come_with_their_whole(family, expected):
    assert replay_parents(get_family(family)) == expected
