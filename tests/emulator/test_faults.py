from __future__ import annotations

import time

import pytest
import requests

from include.zuora_emulator import Emulator


def _statuses(api, n: int) -> list[int | str]:
    out: list[int | str] = []
    for _ in range(n):
        try:
            out.append(api.get("/object-query/accounts").status_code)
        except requests.ConnectionError:
            out.append("drop")
            api.session = requests.Session()
    return out


def _swap(api, profile: dict) -> None:
    assert api.session.put(f"{api.base}/_admin/faults", json=profile).status_code == 200


def test_429_every_nth_with_retry_after(fresh_api):
    _swap(fresh_api, {"rules": [{"kind": "429", "every": 3, "retry_after": 2}]})
    statuses = _statuses(fresh_api, 9)
    assert statuses == [200, 200, 429] * 3
    _swap(fresh_api, {"rules": [{"kind": "429", "every": 1, "retry_after": 2}]})
    r = fresh_api.get("/object-query/accounts")
    assert r.headers["Retry-After"] == "2"
    assert r.json()["reasons"][0]["code"] == 70


def test_5xx_burst_then_recovery(fresh_api):
    _swap(
        fresh_api,
        {
            "rules": [
                {
                    "kind": "5xx",
                    "every": 4,
                    "burst": 2,
                    "status": 503,
                    "code": 50000061,
                    "max": 2,
                }
            ]
        },
    )
    statuses = _statuses(fresh_api, 10)
    assert statuses == [200, 200, 200, 503, 503, 200, 200, 200, 200, 200]


def test_dropped_connection(fresh_api):
    _swap(fresh_api, {"rules": [{"kind": "drop", "every": 2, "max": 1}]})
    assert _statuses(fresh_api, 3) == [200, "drop", 200]


def test_slow_response(fresh_api):
    _swap(fresh_api, {"rules": [{"kind": "slow", "every": 1, "delay_ms": 300, "max": 1}]})
    t0 = time.monotonic()
    assert fresh_api.get("/object-query/accounts").status_code == 200
    assert time.monotonic() - t0 >= 0.3


def test_token_expiry_fault(fresh_api):
    _swap(fresh_api, {"rules": [{"kind": "token_expiry", "every": 2, "max": 1}]})
    assert _statuses(fresh_api, 3) == [200, 401, 401]
    fresh_api.token = fresh_api.new_token()
    assert fresh_api.get("/object-query/accounts").status_code == 200


def test_probability_faults_are_deterministic_from_the_seed(fresh_api):
    profile = {"seed": 11, "rules": [{"kind": "5xx", "probability": 0.3}]}
    _swap(fresh_api, profile)
    first = _statuses(fresh_api, 30)
    _swap(fresh_api, profile)
    assert _statuses(fresh_api, 30) == first and 500 in first and 200 in first
    stats = fresh_api.session.get(f"{fresh_api.base}/_admin/stats").json()
    assert stats["faults_injected"]["5xx"] == first.count(500)


def test_faults_spare_the_token_endpoint_and_admin(fresh_api):
    _swap(fresh_api, {"rules": [{"kind": "5xx", "every": 1, "match": "/"}]})
    assert fresh_api.new_token()
    assert fresh_api.session.get(f"{fresh_api.base}/_admin/stats").status_code == 200


def test_rate_limit_per_minute_gives_429_with_retry_after():
    with Emulator(scale="tiny", rate_limit_per_minute=3) as emu:
        from tests.emulator.conftest import Api

        api = Api(emu)
        if time.time() % 60 > 55:  # the budget is per clock minute: start clear of its boundary
            time.sleep(60.5 - time.time() % 60)
        statuses = [api.get("/object-query/accounts") for _ in range(4)]
        assert [r.status_code for r in statuses] == [200, 200, 200, 429]
        assert int(statuses[-1].headers["Retry-After"]) >= 1
        assert statuses[1].headers["RateLimit-Remaining"] == "1"


def test_concurrency_limit(fresh_emulator):
    emu = fresh_emulator
    emu.limits.concurrency = 1
    emu.limits.in_flight = 1  # another request holds the only slot
    from tests.emulator.conftest import Api

    r = Api(emu).get("/object-query/accounts")
    assert r.status_code == 429 and r.headers["Concurrency-Limit-Remaining"] == "0"


@pytest.mark.parametrize(
    "bad",
    [{"rules": [{"kind": "meteor"}]}, {"rules": [{"kind": "429", "nonsense": 1}]}],
)
def test_bad_fault_profile_is_refused(fresh_api, bad):
    r = fresh_api.session.put(f"{fresh_api.base}/_admin/faults", json=bad)
    assert r.status_code == 400


def test_a_fault_on_a_post_leaves_the_keep_alive_connection_usable(fresh_api):
    _swap(fresh_api, {"rules": [{"kind": "5xx", "every": 1, "max": 1, "match": "/v1/action/update"}]})
    doc = fresh_api.truth("invoices")[0]
    body = {"type": "Invoice", "objects": [{"Id": doc["id"], "TransferredToAccounting": "Yes"}]}
    assert fresh_api.send("POST", "/v1/action/update", body).status_code == 500
    again = fresh_api.send("POST", "/v1/action/update", body)
    assert again.status_code == 200 and again.json()[0]["Success"] is True


PAGED = [("sort[]", "updatedDate.ASC"), ("pageSize", "10"), ("fields[]", "id")]


def _page(api, cursor: str | None = None) -> dict:
    r = api.get("/object-query/invoices", PAGED + ([("cursor", cursor)] if cursor else []))
    assert r.status_code == 200, r.text
    return r.json()


def test_repeat_cursor_repeats_the_cursor_the_request_sent(fresh_api):
    _swap(fresh_api, {"rules": [{"kind": "repeat_cursor", "every": 2, "max": 1}]})
    first = _page(fresh_api)
    second = _page(fresh_api, first["nextPage"])
    assert second["nextPage"] == first["nextPage"], "a client following nextPage would loop"
    third = _page(fresh_api, second["nextPage"])
    assert third["data"] == second["data"] and third["nextPage"] != first["nextPage"]


def test_repeat_cursor_on_a_first_page_repeats_on_the_next_request(fresh_api):
    _swap(fresh_api, {"rules": [{"kind": "repeat_cursor", "every": 1, "max": 1}]})
    first = _page(fresh_api)
    assert first["nextPage"]
    second = _page(fresh_api, first["nextPage"])
    assert second["nextPage"] == first["nextPage"]
    assert _page(fresh_api, second["nextPage"])["nextPage"] != first["nextPage"]


def test_missing_id_drops_the_id_of_one_record(fresh_api):
    _swap(fresh_api, {"rules": [{"kind": "missing_id", "every": 1, "max": 2}]})
    data = _page(fresh_api)["data"]
    assert ["id" in r for r in data] == [False] + [True] * 9
    one = fresh_api.truth("invoices")[0]
    assert "id" not in fresh_api.get(f"/object-query/invoices/{one['id']}").json()
    assert all("id" in r for r in _page(fresh_api)["data"])


def test_not_json_answers_200_with_html(fresh_api):
    _swap(fresh_api, {"rules": [{"kind": "not_json", "every": 2, "max": 1}]})
    assert fresh_api.get("/object-query/accounts").status_code == 200
    r = fresh_api.get("/object-query/accounts")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert r.text == "<html>gateway</html>"
    assert fresh_api.get("/object-query/accounts").json()["data"]


@pytest.mark.parametrize("memo", ["credit-memos", "debit-memos"])
def test_memo_refuse_answers_200_success_false_and_changes_nothing(fresh_api, memo):
    _swap(fresh_api, {"rules": [{"kind": "memo_refuse", "every": 1, "max": 1}]})
    before = fresh_api.truth(memo)[0]
    r = fresh_api.send("PUT", f"/v1/{memo}/{before['id']}", {"transferredToAccounting": "Yes"})
    assert r.status_code == 200
    body = r.json()
    assert body["success"] is False and body["reasons"][0]["code"] == 53000020 and body["reasons"][0]["message"]
    assert next(d for d in fresh_api.truth(memo) if d["id"] == before["id"]) == before
    again = fresh_api.send("PUT", f"/v1/{memo}/{before['id']}", {"transferredToAccounting": "Yes"})
    assert again.json()["success"] is True


def test_kinds_limited_to_some_requests_leave_the_others_alone(fresh_api):
    _swap(
        fresh_api,
        {
            "rules": [
                {"kind": "memo_refuse", "every": 1, "match": "/"},
                {"kind": "missing_id", "every": 1, "match": "/"},
            ]
        },
    )
    invoice = fresh_api.truth("invoices")[0]
    body = {"type": "Invoice", "objects": [{"Id": invoice["id"], "TransferredToAccounting": "Yes"}]}
    assert fresh_api.send("POST", "/v1/action/update", body).json() == [{"Id": invoice["id"], "Success": True}]
    assert "id" not in fresh_api.get("/object-query/accounts").json()["data"][0]
    stats = fresh_api.session.get(f"{fresh_api.base}/_admin/stats").json()
    assert stats["faults_injected"] == {"missing_id": 1}
