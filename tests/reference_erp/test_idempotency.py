from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from include.reference_erp import ReferenceErp

from .conftest import Api, invoice

# (method, path, body) after invoice A exists: each is replayed with its first answer.
WRITES = [
    ("POST", "/api/v1/invoices", invoice("B")),
    ("POST", "/api/v1/invoices/batch", {"documents": [invoice("B"), invoice("C")]}),
    ("PUT", "/api/v1/invoices/A", invoice("A", amount=2)),
    ("PATCH", "/api/v1/invoices/A", {"amount": 3}),
    ("POST", "/api/v1/invoices/A/cancel", {"reason": "void"}),
]


def test_a_refusal_is_not_stored_so_the_same_request_is_processed_once_fixed(api, erp):
    erp.set_faults({"reject": {"B": "account on hold"}})
    assert api.call("POST", "/api/v1/invoices", invoice("B"), key="k-b").status_code == 422
    erp.set_faults({})
    again = api.call("POST", "/api/v1/invoices", invoice("B"), key="k-b")
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers


def test_a_batch_with_a_refused_document_is_not_stored(api, erp):
    erp.set_faults({"reject": {"C": "bad"}})
    batch = {"documents": [invoice("B"), invoice("C")]}
    first = api.call("POST", "/api/v1/invoices/batch", batch, key="k-batch").json()["results"]
    assert [r["status"] for r in first] == [201, 422]
    erp.set_faults({})
    second = api.call("POST", "/api/v1/invoices/batch", batch, key="k-batch").json()["results"]
    assert [r["status"] for r in second] == [409, 201]  # processed again: B exists, C now accepted


@pytest.mark.parametrize(("method", "path", "body"), WRITES, ids=lambda v: v if isinstance(v, str) else None)
def test_same_key_replays_the_first_answer_and_changes_nothing(api, erp, method, path, body):
    api.post("/api/v1/invoices", invoice("A"))
    first = api.call(method, path, body, key="k-1")
    snapshot = {d["external_id"]: erp.history("invoices", d["external_id"]) for d in erp.documents("invoices")}
    second = api.call(method, path, body, key="k-1")
    assert (second.status_code, second.json()) == (first.status_code, first.json())
    assert second.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert second.headers["Request-Id"] != first.headers["Request-Id"]
    assert {d["external_id"]: erp.history("invoices", d["external_id"]) for d in erp.documents("invoices")} == snapshot
    assert erp.stats["replayed"] == 1


def test_a_key_reused_for_another_request_is_a_422(api, erp):
    assert api.post("/api/v1/invoices", invoice("A"), key="k").status_code == 201
    for method, path, body in [("POST", "/api/v1/invoices", invoice("B")), ("POST", "/api/v1/payments", invoice("A")),
                               ("PUT", "/api/v1/invoices/A", invoice("A"))]:  # fmt: skip
        r = api.call(method, path, body, key="k")
        assert (r.status_code, r.json()) == (422, {"error": "Idempotency-Key reused for a different request"})
    assert [d["external_id"] for d in erp.documents("invoices")] == ["A"]
    assert erp.documents("payments") == []


def test_the_same_body_with_keys_in_another_order_is_the_same_request(api):
    api.session.post(f"{api.base}/api/v1/payments", data=b'{"external_id":"P","amount":1}',
                     headers={"Idempotency-Key": "k"})  # fmt: skip
    r = api.session.post(f"{api.base}/api/v1/payments", data=b'{ "amount": 1, "external_id": "P" }',
                         headers={"Idempotency-Key": "k"})  # fmt: skip
    assert r.status_code == 201 and r.headers["Idempotent-Replayed"] == "true"


@pytest.mark.parametrize("status", [500, 503, 429])
def test_a_faulted_answer_is_not_stored_so_the_retry_is_processed(api, erp, status):
    erp.set_faults({"script": [status]})
    assert api.post("/api/v1/invoices", invoice("A"), key="k").status_code == status
    assert erp.documents("invoices") == []
    retry = api.post("/api/v1/invoices", invoice("A"), key="k")
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry.headers
    third = api.post("/api/v1/invoices", invoice("A"), key="k")
    assert third.status_code == 201 and third.headers["Idempotent-Replayed"] == "true"
    assert len(erp.documents("invoices")) == 1


@pytest.mark.parametrize("key", ["", "x" * 256])
def test_a_bad_key_is_a_400(api, key):
    r = api.session.post(f"{api.base}/api/v1/invoices", json=invoice("A"), headers={"Idempotency-Key": key})
    assert r.status_code == 400
    assert api.erp.documents("invoices") == []


def test_documents_and_keys_survive_a_restart(tmp_path):
    db = tmp_path / "erp.sqlite3"
    with ReferenceErp(db_path=db) as erp:
        api = Api(erp)
        first = api.post("/api/v1/invoices", invoice("A"), key="k")
        api.post("/api/v1/invoices/A/cancel", {"reason": "void"})
    assert db.exists()
    with ReferenceErp(db_path=db) as erp:
        api = Api(erp)
        replay = api.post("/api/v1/invoices", invoice("A"), key="k")
        assert (replay.status_code, replay.json()) == (201, first.json())
        assert replay.headers["Idempotent-Replayed"] == "true"
        assert erp.document("invoices", "A")["status"] == "canceled"
        assert [h["op"] for h in erp.history("invoices", "A")] == ["create", "cancel"]
        assert api.post("/api/v1/invoices", invoice("B")).json()["id"] == "INVOICES-000002"
    assert db.exists()


def test_a_temporary_db_is_removed_on_stop():
    erp = ReferenceErp().start()
    path = erp.store.path
    assert path.exists()
    erp.stop()
    assert not path.parent.exists()


def test_concurrent_requests_under_one_key_create_one_document(erp):
    def send(i: int) -> tuple[int, dict, bool]:
        api = Api(erp)  # a session per thread
        same = api.post("/api/v1/invoices", invoice("A"), key="k")
        api.post("/api/v1/invoices", invoice(f"other-{i}"))
        return same.status_code, same.json(), "Idempotent-Replayed" in same.headers

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(send, range(16)))
    assert all((status, body) == (201, answers[0][1]) for status, body, _ in answers)
    assert sum(replayed for *_, replayed in answers) == 15
    assert erp.document("invoices", "A")["id"] == answers[0][1]["id"]
    ids = [d["id"] for d in erp.documents("invoices")]
    assert len(ids) == 17 and len(set(ids)) == 17
    assert ids == [f"INVOICES-{n:06d}" for n in range(1, 18)]
