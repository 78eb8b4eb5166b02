from __future__ import annotations

import uuid

import pytest
import requests

from .conftest import invoice


@pytest.mark.parametrize(
    "auth",
    [None, ("erp", "wrong"), ("someone", "erp-secret"), ("erp", "")],
    ids=["none", "wrong-password", "wrong-user", "empty-password"],
)
@pytest.mark.parametrize(("method", "path"), [("GET", "/api/v1/invoices"), ("POST", "/api/v1/invoices"),
                                              ("GET", "/_admin/stats")])  # fmt: skip
def test_auth_is_refused(api, auth, method, path):
    r = requests.request(method, f"{api.base}{path}", json=invoice("A"), auth=auth, timeout=5)
    assert r.status_code == 401
    assert r.json() == {"error": "unauthorized"}
    assert r.headers["Content-Type"] == "application/json"
    assert uuid.UUID(r.headers["Request-Id"]).version == 4
    assert "erp-secret" not in r.text
    assert api.erp.documents("invoices") == []


def test_auth_is_accepted_and_every_answer_has_a_request_id(api):
    first, second = api.get("/api/v1/invoices"), api.get("/api/v1/invoices")
    assert (first.status_code, first.json()) == (200, {"data": []})
    assert first.headers["Content-Type"] == "application/json"
    assert first.headers["Request-Id"] != second.headers["Request-Id"]


@pytest.mark.parametrize(
    "body",
    [invoice("8ad0a1"), {"external_id": "8ad0a1", "amount": 12.5}, {"payment": {"external_id": "8ad0a1"}}],
    ids=["wrapped", "flat", "wrapped-minimal"],
)
def test_create_get_and_duplicate(api, body):
    r = api.post("/api/v1/invoices", body)
    assert r.status_code == 201
    assert r.json() == {"id": "INVOICES-000001", "external_id": "8ad0a1", "version": 1}

    got = api.get("/api/v1/invoices/8ad0a1").json()
    assert {k: got[k] for k in ("id", "external_id", "status", "version", "document")} == {
        "id": "INVOICES-000001",
        "external_id": "8ad0a1",
        "status": "active",
        "version": 1,
        "document": body,
    }
    assert got["created_at"] == got["updated_at"]

    dup = api.post("/api/v1/invoices", body)
    assert dup.status_code == 409
    assert dup.json() == {"error": "invoices 8ad0a1 already exists", "id": "INVOICES-000001"}
    assert len(api.erp.documents("invoices")) == 1


def test_duplicate_of_a_canceled_document_is_still_a_conflict(api):
    api.post("/api/v1/payments", {"external_id": "P1"})
    api.post("/api/v1/payments/P1/cancel")
    assert api.post("/api/v1/payments", {"external_id": "P1"}).status_code == 409


@pytest.mark.parametrize(
    "body",
    [{}, {"number": "INV1"}, {"invoice": {"number": "INV1"}}, {"invoice": {"external_id": "A"}, "extra": 1},
     {"external_id": ""}],
    ids=["empty", "flat-without", "wrapped-without", "two-keys-inner-not-looked-at", "empty-string"],
)  # fmt: skip
def test_external_id_is_required(api, body):
    r = api.post("/api/v1/invoices", body)
    assert r.status_code == 422
    assert r.json() == {"error": "external_id is required", "field": "external_id"}
    assert api.erp.documents("invoices") == []


@pytest.mark.parametrize("data", [b"[1, 2]", b'"text"', b"{not json", b"42"])
def test_a_body_that_is_not_a_json_object_is_a_400(api, data):
    r = api.session.post(f"{api.base}/api/v1/invoices", data=data, headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert "error" in r.json()


def test_list_is_ordered_by_erp_id_and_per_collection(api):
    for ext in ("c", "a", "b"):
        assert api.post("/api/v1/credit_memos", {"memo": {"external_id": ext}}).status_code == 201
    api.post("/api/v1/refunds", {"external_id": "a"})
    data = api.get("/api/v1/credit_memos").json()["data"]
    assert [(d["id"], d["external_id"]) for d in data] == [
        ("CREDIT_MEMOS-000001", "c"),
        ("CREDIT_MEMOS-000002", "a"),
        ("CREDIT_MEMOS-000003", "b"),
    ]
    assert [d["id"] for d in api.get("/api/v1/refunds").json()["data"]] == ["REFUNDS-000001"]
    assert api.erp.documents("credit_memos") == data


def test_batch_mixes_created_conflicts_and_rejections(api, erp):
    api.post("/api/v1/invoices", invoice("dup"))
    erp.set_faults({"reject": {"bad": "accounting period closed"}})
    docs = [invoice("new1"), invoice("dup"), invoice("bad"), {"invoice": {"number": "no id"}}, invoice("new1"), 7,
            {"external_id": "new2"}]  # fmt: skip
    r = api.post("/api/v1/invoices/batch", {"documents": docs})
    assert r.status_code == 200
    assert r.json()["results"] == [
        {"status": 201, "id": "INVOICES-000002", "external_id": "new1", "version": 1},
        {"status": 409, "error": "invoices dup already exists", "external_id": "dup", "id": "INVOICES-000001"},
        {"status": 422, "error": "accounting period closed", "external_id": "bad"},
        {"status": 422, "error": "external_id is required", "external_id": None},
        {"status": 409, "error": "invoices new1 already exists", "external_id": "new1", "id": "INVOICES-000002"},
        {"status": 422, "error": "a document must be a JSON object", "external_id": None},
        {"status": 201, "id": "INVOICES-000003", "external_id": "new2", "version": 1},
    ]
    assert [d["external_id"] for d in erp.documents("invoices")] == ["dup", "new1", "new2"]


@pytest.mark.parametrize("body", [{"documents": []}, {"documents": [invoice(str(i)) for i in range(101)]},
                                  {"docs": [invoice("A")]}, [invoice("A")]])  # fmt: skip
def test_batch_size_and_shape(api, body):
    assert api.post("/api/v1/invoices/batch", body).status_code == 400
    assert api.erp.documents("invoices") == []


def test_batch_of_100_is_accepted(api):
    r = api.post("/api/v1/payments/batch", {"documents": [{"external_id": f"P{i}"} for i in range(100)]})
    assert [x["status"] for x in r.json()["results"]] == [201] * 100
    assert r.json()["results"][-1]["id"] == "PAYMENTS-000100"


def test_put_patch_cancel_versions_and_history(api, erp):
    api.post("/api/v1/invoices", invoice("A", amount=10, currency="USD"))
    r = api.put("/api/v1/invoices/A", invoice("A", amount=11))
    assert r.status_code == 200 and r.json() == {"id": "INVOICES-000001", "external_id": "A", "version": 2}
    r = api.patch("/api/v1/invoices/A", {"invoice": {"amount": 12, "memo": "x"}})
    assert r.json()["version"] == 3
    r = api.patch("/api/v1/invoices/A", {"balance": 0})  # a flat patch of a wrapped document: into the inner object
    assert r.json()["version"] == 4
    assert erp.document("invoices", "A")["document"] == {
        "invoice": {"external_id": "A", "number": "INV-A", "amount": 12, "memo": "x", "balance": 0}
    }

    r = api.post("/api/v1/invoices/A/cancel", {"reason": "voided in Zuora"})
    assert r.json() == {"id": "INVOICES-000001", "external_id": "A", "version": 5, "status": "canceled"}
    again = api.post("/api/v1/invoices/A/cancel")
    assert (again.status_code, again.json()["version"]) == (200, 5)
    got = api.get("/api/v1/invoices/A").json()
    assert (got["status"], got["version"]) == ("canceled", 5)

    r = api.put("/api/v1/invoices/A", invoice("A", amount=13))  # a canceled document comes back
    assert r.json()["version"] == 6
    assert erp.document("invoices", "A")["status"] == "active"

    history = erp.history("invoices", "A")
    assert [(h["version"], h["op"]) for h in history] == [
        (1, "create"), (2, "replace"), (3, "patch"), (4, "patch"), (5, "cancel"), (6, "replace")
    ]  # fmt: skip
    assert history[0]["document"] == invoice("A", amount=10, currency="USD")
    assert history[4]["reason"] == "voided in Zuora"
    assert history[4]["document"] == history[3]["document"]
    assert all(h["at"].endswith("Z") for h in history)


def test_patch_of_a_flat_document_is_a_shallow_merge(api, erp):
    api.post("/api/v1/payments", {"external_id": "P", "amount": 5, "meta": {"a": 1}})
    api.patch("/api/v1/payments/P", {"meta": {"b": 2}, "status": "Processed"})
    assert erp.document("payments", "P")["document"] == {
        "external_id": "P",
        "amount": 5,
        "meta": {"b": 2},
        "status": "Processed",
    }


@pytest.mark.parametrize(
    ("method", "body"),
    [("PUT", {"external_id": "B"}), ("PATCH", {"external_id": "B"}), ("PATCH", {"invoice": {"external_id": "B"}})],
)
def test_a_body_naming_another_external_id_is_a_422(api, erp, method, body):
    api.post("/api/v1/invoices", invoice("A"))
    r = api.call(method, "/api/v1/invoices/A", body)
    assert r.status_code == 422 and r.json()["field"] == "external_id"
    assert erp.document("invoices", "A")["version"] == 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/invoices/missing", None),
        ("PUT", "/api/v1/invoices/missing", invoice("missing")),
        ("PATCH", "/api/v1/invoices/missing", {"amount": 1}),
        ("POST", "/api/v1/invoices/missing/cancel", None),
        ("GET", "/api/v1/payments/A", None),  # A exists, but in invoices
    ],
)
def test_unknown_documents_are_404(api, method, path, body):
    api.post("/api/v1/invoices", invoice("A"))
    r = api.call(method, path, body)
    assert r.status_code == 404 and "not found" in r.json()["error"]


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("GET", "/api/v2/invoices", 404), ("GET", "/api/v1/Invoices", 404), ("GET", "/nothing", 404),
     ("DELETE", "/api/v1/invoices/A", 405), ("PUT", "/api/v1/invoices", 405)],
)  # fmt: skip
def test_unknown_routes(api, method, path, status):
    r = api.call(method, path)
    assert r.status_code == status
    assert r.headers["Content-Type"] == "application/json" and "Request-Id" in r.headers
