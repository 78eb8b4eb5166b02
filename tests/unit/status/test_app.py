"""The page's FastAPI app through TestClient, with Airflow's real simple auth manager and JWTs:
anonymous callers are refused, a logged-in user reads the page, its JSON and the sizing chart, and
the replay endpoint triggers zuora_replay only for a user who may, and never for a cross-site call."""

from __future__ import annotations

import pytest
from airflow.api_fastapi.app import create_auth_manager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
from airflow.sdk import ObjectStoragePath
from fastapi.testclient import TestClient
from zuora_etl.families import load_families
from zuora_etl.status.app import Sources, create_app, cross_site_reason
from zuora_etl.status.snapshot import report_path

from .conftest import FAMILY, NOW, OBJECT

HOST = "testserver"
JSON_HEADERS = {"X-Zuora-Sync": "1", "Content-Type": "application/json", "Origin": f"http://{HOST}"}


@pytest.fixture(scope="module")
def auth_manager():
    return create_auth_manager()  # the configured one (simple), as the API server makes it


def token(auth_manager, role: str) -> str:
    return auth_manager.generate_jwt(SimpleAuthManagerUser(username=f"{role}-user", role=role))


@pytest.fixture
def reports(tmp_path):
    root = ObjectStoragePath(f"file://{tmp_path}/reports")
    chart = root / report_path("sizing", "size__1", "chart.png")
    chart.parent.mkdir(parents=True, exist_ok=True)
    chart.write_bytes(b"\x89PNG chart bytes")
    return root


@pytest.fixture
def triggered():
    return []


@pytest.fixture
def client(filled, reports, triggered, auth_manager):
    variables = {f"zuora_hwm__{FAMILY}__{OBJECT}": "2026-12-02T10:30:00+00:00", "zuora_etl_reports_root": "set"}

    def trigger(conf, user):
        triggered.append((conf, user.get_name()))
        return f"manual__replay_{len(triggered)}"

    sources = Sources(
        families=lambda: (list(load_families()), {}),
        engine=lambda: filled,
        variable=variables.get,
        reports_root=lambda value: reports if value == "set" else None,
        sizing_runs=lambda: ["size__1"],
        trigger=trigger,
        clock=lambda: NOW,
    )
    with TestClient(create_app(sources), base_url=f"http://{HOST}") as c:
        yield c


def bearer(auth_manager, role):
    return {"Authorization": f"Bearer {token(auth_manager, role)}"}


@pytest.mark.parametrize("path", ["/", "/api/status", "/reports/sizing/size__1/chart.png"])
def test_anonymous_and_forged_requests_are_refused(client, path):
    resp = client.get(path)
    assert resp.status_code == 401
    assert "PNG" not in resp.text and "2026-12-02 10:30:00" not in resp.text
    forged = client.get(path, headers={"Authorization": "Bearer not-a-jwt"})
    assert forged.status_code in (401, 403)
    assert client.get(path, cookies={"_token": "not-a-jwt"}).status_code in (401, 403)


def test_a_viewer_reads_the_json_with_the_runs_counts_and_watermark(client, auth_manager):
    resp = client.get("/api/status", headers=bearer(auth_manager, "viewer"))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    fam = next(f for f in body["families"] if f["family"] == FAMILY)
    inv = next(o for o in fam["objects"] if o["object"] == OBJECT)
    assert inv["watermark"].startswith("2026-12-02T10:30:00") and inv["lag_seconds"] == 5400
    assert inv["runs"][0]["run_id"] == "manual__3" and inv["runs"][0]["rows_loaded"] == 42
    assert inv["open_dead_letters"] == 2
    assert body["sizing"]["chart"] == "sizing/size__1/chart.png"


def test_the_page_uses_the_ui_cookie_and_hides_replay_from_a_viewer(client, auth_manager):
    client.cookies.set("_token", token(auth_manager, "viewer"))
    resp = client.get("/")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
    assert "viewer-user" in resp.text and "2026-12-02 10:30:00" in resp.text
    assert 'class="replay"' not in resp.text  # a viewer may not trigger DAG runs
    assert 'src="/reports/sizing/size__1/chart.png"' in resp.text
    chart = client.get("/reports/sizing/size__1/chart.png")
    assert chart.status_code == 200 and chart.content == b"\x89PNG chart bytes"
    assert chart.headers["content-type"] == "image/png"
    client.cookies.set("_token", token(auth_manager, "admin"))
    assert 'class="replay"' in client.get("/").text


@pytest.mark.parametrize("path", ["/reports/sizing/size__1/..%2F..%2Fsecret.png", "/reports/other/size__1/chart.png",
                                  "/reports/sizing/size__1/.hidden.png", "/reports/sizing/..%2F/chart.png",
                                  "/reports/sizing/size__2/chart.png"])  # fmt: skip
def test_report_files_outside_the_reports_are_not_served(client, auth_manager, path):
    assert client.get(path, headers=bearer(auth_manager, "viewer")).status_code == 404


def test_replay_triggers_zuora_replay_for_the_open_dead_letters_as_the_caller(client, auth_manager, triggered):
    headers = {**bearer(auth_manager, "user"), **JSON_HEADERS}
    resp = client.post("/api/replay", json={"family": FAMILY, "object": OBJECT}, headers=headers)
    assert resp.status_code == 201, resp.text
    assert triggered == [({"family": FAMILY, "object": OBJECT, "ids": [], "dead_letters": True}, "user-user")]
    body = resp.json()
    assert body["run_id"] == "manual__replay_1" and body["open_dead_letters"] == 2
    assert body["run_url"] == "/dags/zuora_replay/runs/manual__replay_1"


def test_replay_is_refused_to_anonymous_viewers_and_objects_without_letters(client, auth_manager, triggered):
    body = {"family": FAMILY, "object": OBJECT}
    assert client.post("/api/replay", json=body, headers=JSON_HEADERS).status_code == 401
    viewer = {**bearer(auth_manager, "viewer"), **JSON_HEADERS}
    assert client.post("/api/replay", json=body, headers=viewer).status_code == 403
    admin = {**bearer(auth_manager, "admin"), **JSON_HEADERS}
    nothing = client.post("/api/replay", json={"family": FAMILY, "object": "invoice_items"}, headers=admin)
    assert nothing.status_code == 409  # its only dead letter is resolved
    unknown = client.post("/api/replay", json={"family": FAMILY, "object": "payments"}, headers=admin)
    assert unknown.status_code == 404
    assert triggered == []


@pytest.mark.parametrize(
    ("change", "drop"),
    [
        ({"Origin": "https://evil.example"}, None),
        ({"Origin": "null"}, None),
        ({"Sec-Fetch-Site": "cross-site"}, None),
        ({"Content-Type": "text/plain"}, None),
        ({}, "X-Zuora-Sync"),
    ],
)
def test_replay_refuses_cross_site_requests_with_the_users_cookie(client, auth_manager, triggered, change, drop):
    client.cookies.set("_token", token(auth_manager, "admin"))
    headers = {k: v for k, v in {**JSON_HEADERS, **change}.items() if k != drop}
    resp = client.post("/api/replay", content=f'{{"family": "{FAMILY}", "object": "{OBJECT}"}}', headers=headers)
    assert resp.status_code == 403 and "cross-site" in resp.json()["detail"]
    assert triggered == []


def test_cross_site_reason_accepts_a_same_origin_fetch():
    same = {"x-zuora-sync": "1", "content-type": "application/json; charset=utf-8", "origin": "http://a:8080",
            "sec-fetch-site": "same-origin"}  # fmt: skip
    assert cross_site_reason(same, {"a:8080"}) is None
    assert cross_site_reason({k: v for k, v in same.items() if k != "origin"}, {"a:8080"}) is None
    assert cross_site_reason(same, {"b:8080"}) is not None


def test_mounted_under_its_prefix_the_page_links_its_own_routes(client, auth_manager):
    from fastapi import FastAPI

    parent = FastAPI()  # as the API server mounts a plugin's app
    parent.mount("/zuora-sync", client.app)
    with TestClient(parent, base_url=f"http://{HOST}") as mounted:
        mounted.cookies.set("_token", token(auth_manager, "admin"))
        html = mounted.get("/zuora-sync/").text
        assert 'data-prefix="/zuora-sync"' in html and 'href="/zuora-sync/api/status"' in html
        assert 'src="/zuora-sync/reports/sizing/size__1/chart.png"' in html
        assert 'href="/dags/zuora_crm_invoices/runs/manual__3"' in html  # the UI's own routes, not under the prefix
        assert mounted.get("/zuora-sync/reports/sizing/size__1/chart.png").content == b"\x89PNG chart bytes"
        assert mounted.get("/zuora-sync/api/status", cookies={"_token": ""}).status_code == 401


def test_an_unreadable_state_database_answers_503_without_its_message(client, auth_manager):
    def broken():
        raise RuntimeError("could not connect to postgresql://etl:s3cret@db.internal/state")

    client.app.state.sources.engine = broken
    for path in ("/", "/api/status"):
        resp = client.get(path, headers=bearer(auth_manager, "viewer"))
        assert resp.status_code == 503 and "RuntimeError" in resp.text
        assert "s3cret" not in resp.text and "db.internal" not in resp.text
