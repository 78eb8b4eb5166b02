from __future__ import annotations

import pytest


def test_action_update_marks_and_answers_per_object_in_order(fresh_api):
    api = fresh_api
    invoices = api.truth("invoices")[:3]
    body = {
        "type": "Invoice",
        "objects": [
            {"Id": invoices[0]["id"], "TransferredToAccounting": "Yes"},
            {"Id": "0" * 32, "TransferredToAccounting": "Yes"},
            {"Id": invoices[1]["id"], "TransferredToAccounting": "Maybe"},
            {"Id": invoices[2]["id"], "TransferredToAccounting": "Processing"},
        ],
    }
    r = api.send("POST", "/v1/action/update", body)
    assert r.status_code == 200
    answer = r.json()
    assert [a["Success"] for a in answer] == [True, False, False, True]
    assert answer[1]["Errors"][0]["Code"] and answer[2]["Errors"][0]["Message"]
    after = {i["id"]: i for i in api.truth("invoices")}
    assert after[invoices[0]["id"]]["transferredToAccounting"] == "Yes"
    assert after[invoices[1]["id"]]["transferredToAccounting"] == "No"
    assert after[invoices[2]["id"]]["transferredToAccounting"] == "Processing"
    # Marking bumps updatedDate, so an incremental reader sees the flag change.
    assert after[invoices[0]["id"]]["updatedDate"] != invoices[0]["updatedDate"]


@pytest.mark.parametrize("kind,obj", [("Payment", "payments"), ("Refund", "refunds")])
def test_action_update_other_types(fresh_api, kind, obj):
    doc = fresh_api.truth(obj)[0]
    r = fresh_api.send(
        "POST",
        "/v1/action/update",
        {
            "type": kind,
            "objects": [{"Id": doc["id"], "TransferredToAccounting": "Yes"}],
        },
    )
    assert r.json() == [{"Id": doc["id"], "Success": True}]
    assert next(d for d in fresh_api.truth(obj) if d["id"] == doc["id"])["transferredToAccounting"] == "Yes"


def test_action_update_refuses_more_than_50(api):
    objects = [{"Id": f"{i:032x}", "TransferredToAccounting": "Yes"} for i in range(51)]
    r = api.send("POST", "/v1/action/update", {"type": "Invoice", "objects": objects})
    assert r.status_code == 400 and "50" in r.json()["reasons"][0]["message"]


@pytest.mark.parametrize("kind", ["CreditMemo", "InvoiceItem", None])
def test_action_update_refuses_other_types(api, kind):
    r = api.send(
        "POST",
        "/v1/action/update",
        {"type": kind, "objects": [{"Id": "x", "TransferredToAccounting": "Yes"}]},
    )
    assert r.status_code == 400


@pytest.mark.parametrize("memo", ["credit-memos", "debit-memos"])
def test_memo_put_sets_the_flag_by_id_or_number(fresh_api, memo):
    doc = fresh_api.truth(memo)[0]
    r = fresh_api.send("PUT", f"/v1/{memo}/{doc['memoNumber']}", {"transferredToAccounting": "Yes"})
    assert r.status_code == 200 and r.json()["success"] is True
    assert next(d for d in fresh_api.truth(memo) if d["id"] == doc["id"])["transferredToAccounting"] == "Yes"
    assert fresh_api.send("PUT", f"/v1/{memo}/{doc['id']}", {"transferredToAccounting": "Bogus"}).status_code == 400
    assert fresh_api.send("PUT", f"/v1/{memo}/nope", {"transferredToAccounting": "Yes"}).status_code == 404


def test_malformed_json_body_is_400(api):
    r = api.session.post(
        f"{api.base}/v1/action/update",
        data=b"{not json",
        headers={"Authorization": f"Bearer {api.token}"},
    )
    assert r.status_code == 400 and r.json()["reasons"]
