from __future__ import annotations

import time

import pytest
import requests

from include.reference_erp import ReferenceErp

from .conftest import invoice


@pytest.mark.parametrize(
    ("profile", "expected"),
    [
        ({"every": {"429": 3}}, [200, 200, 429, 200, 200, 429, 200]),
        ({"every": {"500": 2, "503": 3}}, [200, 500, 503, 500, 200, 500, 200]),
        ({"script": [500, 429, None, 503]}, [500, 429, 200, 503, 200, 200, 200]),
        ({"script": [None, 503], "every": {"500": 3}}, [200, 503, 500, 200, 200, 500, 200]),
    ],
)
def test_every_and_script_are_deterministic(api, erp, profile, expected):
    erp.set_faults(profile)
    assert api.statuses(len(expected)) == expected
    erp.set_faults(profile)  # setting a profile starts its counters afresh
    assert api.statuses(len(expected)) == expected


def test_injected_answers_look_like_the_erps(api, erp):
    erp.set_faults({"script": [429, 503], "retry_after_s": 3})
    r = api.get("/api/v1/invoices")
    assert (r.status_code, r.json(), r.headers["Retry-After"]) == (429, {"error": "rate limited"}, "3")
    r = api.post("/api/v1/invoices", invoice("A"))
    assert (r.status_code, r.json()) == (503, {"error": "service unavailable"})
    assert r.headers["Content-Type"] == "application/json" and "Request-Id" in r.headers
    assert erp.documents("invoices") == []


def test_unauthenticated_requests_do_not_count(api, erp):
    erp.set_faults({"every": {"500": 2}})
    assert requests.get(f"{api.base}/api/v1/invoices", timeout=5).status_code == 401
    assert api.statuses(2) == [200, 500]


def test_rate_limit_answers_429_with_retry_after(api, erp):
    erp.set_faults({"rate_limit_per_second": 3, "retry_after_s": 2})
    answers = [api.get("/api/v1/invoices") for _ in range(5)]
    assert [r.status_code for r in answers] == [200, 200, 200, 429, 429]
    assert answers[3].headers["Retry-After"] == "2" and answers[3].json() == {"error": "rate limited"}
    time.sleep(1.05)
    assert api.statuses(3) == [200, 200, 200]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/v1/invoices", invoice("R")),
        ("PUT", "/api/v1/invoices/R", invoice("R")),
        ("PATCH", "/api/v1/invoices/R", {"amount": 1}),
    ],
)
def test_reject_refuses_the_chosen_documents(api, erp, method, path, body):
    api.post("/api/v1/invoices", invoice("OK"))
    erp.set_faults({"reject": {"R": "customer R is on hold"}})
    r = api.call(method, path, body)
    assert (r.status_code, r.json()) == (422, {"error": "customer R is on hold", "external_id": "R"})
    assert api.post("/api/v1/invoices/OK/cancel").status_code == 200  # others pass; cancel is never refused
    assert erp.document("invoices", "R") is None


def test_a_lost_answer_is_committed_and_replayed_to_the_retry(api, erp):
    erp.set_faults({"lose_answer_every": 2})
    assert api.post("/api/v1/invoices", invoice("A")).status_code == 201  # write 1
    assert api.get("/api/v1/invoices").status_code == 200  # reads do not count
    with pytest.raises(requests.ConnectionError):
        api.post("/api/v1/invoices", invoice("B"), key="kb")  # write 2: committed, answer lost
    assert erp.document("invoices", "B")["version"] == 1
    retry = api.post("/api/v1/invoices", invoice("B"), key="kb")  # write 3
    assert retry.status_code == 201 and retry.headers["Idempotent-Replayed"] == "true"
    assert retry.json() == {"id": "INVOICES-000002", "external_id": "B", "version": 1}
    assert [d["external_id"] for d in erp.documents("invoices")] == ["A", "B"]
    with pytest.raises(requests.ConnectionError):
        api.put("/api/v1/invoices/A", invoice("A", amount=2))  # write 4
    assert erp.document("invoices", "A")["version"] == 2
    stats = erp.stats
    assert (stats["lost_answers"], stats["replayed"], stats["requests"]) == (2, 1, 5)
    assert sum(stats["by_status"].values()) + stats["lost_answers"] == stats["requests"]


def test_latency_is_added_to_every_answer(api, erp):
    erp.set_faults({"latency_ms": 150})
    started = time.monotonic()
    assert api.get("/api/v1/invoices").status_code == 200
    assert requests.get(f"{api.base}/api/v1/invoices", timeout=5).status_code == 401
    assert time.monotonic() - started >= 0.3


def test_faults_are_read_and_replaced_at_runtime(api, erp):
    profile = {"every": {"503": 2}, "reject": {"X": "no"}, "description": "flaky"}
    r = api.put("/_admin/faults", profile)
    assert (r.status_code, r.json()) == (200, profile)
    assert api.get("/_admin/faults").json() == profile == erp.faults
    assert api.statuses(2) == [200, 503]  # admin requests are not API requests: not counted
    erp.set_faults(None)
    assert api.get("/_admin/faults").json() == {}
    assert api.statuses(4) == [200] * 4


@pytest.mark.parametrize(
    "profile",
    [{"every": {"200": 2}}, {"every": {"500": 0}}, {"script": ["x"]}, {"retry_after": 1},
     {"rate_limit_per_second": -1}, {"lose_answer_every": 0}, [1]],
)  # fmt: skip
def test_an_invalid_profile_is_refused(api, erp, profile):
    erp.set_faults({"every": {"500": 1}})
    r = api.put("/_admin/faults", profile)
    assert r.status_code == 400 and r.json()["error"].startswith("invalid fault profile")
    with pytest.raises(ValueError):
        erp.set_faults(profile)
    with pytest.raises(ValueError):
        ReferenceErp(faults=profile)
    assert erp.faults == {"every": {"500": 1}}


def test_stats_and_reset(api, erp):
    api.post("/api/v1/invoices", invoice("A"), key="k")
    api.post("/api/v1/invoices", invoice("A"), key="k")
    api.post("/api/v1/invoices", invoice("A"))
    api.get("/api/v1/invoices/A")
    requests.get(f"{api.base}/api/v1/invoices", timeout=5)
    stats = api.get("/_admin/stats").json()
    assert stats == {
        "requests": 5,
        "by_status": {"201": 2, "409": 1, "200": 1, "401": 1},
        "by_route": {"POST /api/v1/{collection}": 3, "GET /api/v1/{collection}/{external_id}": 1,
                     "GET /api/v1/{collection}": 1},
        "replayed": 1,
        "lost_answers": 0,
    }  # fmt: skip
    assert erp.stats == stats
    assert api.post("/_admin/reset").json() == {"reset": True}
    assert erp.documents("invoices") == [] and erp.stats["requests"] == 0
    r = api.post("/api/v1/invoices", invoice("A"), key="k")  # keys are forgotten too
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers
