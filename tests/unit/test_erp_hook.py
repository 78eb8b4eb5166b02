"""ErpHook against a scripted HTTP server on loopback: auth, headers, idempotency, retries, throttling,
rate limit and daily budget, as the ERP sees them (no mocks of requests)."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from airflow.sdk.exceptions import AirflowFailException
from zuora_etl.hooks.erp import (
    ERP_EXTRA_KEYS,
    ErpAnswer,
    ErpAuthError,
    ErpBudgetExhausted,
    ErpHook,
    ErpUnavailable,
    _retry_after,
)

PASSWORD = "s3cr3t-erp-pass"


class ScriptedServer:
    """Answers each request with the next scripted step, then 200 {"ok": true}; records every
    request (method, path, headers, body, monotonic time). A step is (status, body, headers), or
    "drop" to close the connection without answering."""

    def __init__(self) -> None:
        self.script: list = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the hook's pool expects

            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server.lock:
                    server.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                            "body": body, "at": time.monotonic()})  # fmt: skip
                    step = server.script.pop(0) if server.script else (200, {"ok": True}, {})
                if step == "drop":
                    self.close_connection = True
                    return
                status, answer, headers = step
                payload = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json" if not isinstance(answer, bytes) else "text/html")
                self.send_header("Content-Length", str(len(payload)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = ScriptedServer()
    yield s
    s.close()


@pytest.fixture
def erp(server, monkeypatch):
    """make(**extra) -> an ErpHook on a fresh connection (its own rate limiter and budget) to `server`."""

    def make(budget=None, conn_id: str | None = None, host: str | None = None, **extra) -> ErpHook:
        conn_id = conn_id or f"erp_{uuid.uuid4().hex[:10]}"
        fields = {"conn_type": "http", "host": host or server.url, "login": "erp-user", "password": PASSWORD,
                  "extra": {"rate_per_second": 1000, "backoff_seconds": 0.01, "max_attempts": 4, **extra}}  # fmt: skip
        monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(fields))
        return ErpHook(conn_id, budget=budget)

    return make


def step(status: int, body=None, **headers):
    return (status, {} if body is None else body, headers)


def test_basic_auth_from_login_and_password_and_an_answer(erp, server):
    server.script = [step(201, {"id": "D-1"}, **{"X-Request-Id": "req-9", "Idempotent-Replayed": "true"})]
    answer = erp().send("POST", "/invoices", json={"number": "INV-1"}, idempotency_key="k-1")
    assert answer == ErpAnswer(status=201, body={"id": "D-1"}, request_id="req-9", replayed=True)
    got = server.requests[0]
    expected = base64.b64encode(f"erp-user:{PASSWORD}".encode()).decode()
    assert got["headers"]["Authorization"] == f"Basic {expected}"
    assert got["method"] == "POST" and got["path"] == "/invoices" and json.loads(got["body"]) == {"number": "INV-1"}


def test_extra_headers_are_sent_and_our_settings_are_not(erp, server):
    ours = {"daily_call_budget": 100, "timeout_seconds": 5, "health_endpoint": "/ping"}
    erp(**{"X-Api-Version": "2024-01", **ours}).send("GET", "/invoices/1")
    sent = {k.lower() for k in server.requests[0]["headers"]}
    assert server.requests[0]["headers"]["X-Api-Version"] == "2024-01"
    assert not sent & ERP_EXTRA_KEYS and "proxies" not in sent


def test_the_idempotency_key_goes_with_every_attempt_and_5xx_is_retried(erp, server):
    server.script = [step(503), step(500), step(201, {"id": "D-2"})]
    hook = erp()
    answer = hook.send("POST", "invoices", json={"n": 1}, idempotency_key="inv-42")
    assert answer.status == 201 and answer.body == {"id": "D-2"}
    assert [r["headers"].get("Idempotency-Key") for r in server.requests] == ["inv-42"] * 3
    assert [json.loads(r["body"]) for r in server.requests] == [{"n": 1}] * 3
    assert (hook.calls, hook.retries, hook.throttled) == (3, 2, 0)


def test_429_waits_for_retry_after_seconds(erp, server):
    server.script = [step(429, {"error": "slow down"}, **{"Retry-After": "1"})]
    hook = erp()
    started = time.monotonic()
    assert hook.send("POST", "/invoices", idempotency_key="k").status == 200
    assert time.monotonic() - started >= 0.9
    assert server.requests[1]["at"] - server.requests[0]["at"] >= 0.9
    assert (hook.calls, hook.retries, hook.throttled) == (2, 1, 1)


def test_429_waits_for_a_retry_after_http_date(erp, server):
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)  # whole seconds: 1-2 s away
    server.script = [step(429, **{"Retry-After": when})]
    assert erp().send("POST", "/invoices").status == 200
    assert server.requests[1]["at"] - server.requests[0]["at"] >= 0.5


def test_retry_after_parsing():
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 28 <= _retry_after(soon) <= 30
    assert _retry_after(format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)) == 60  # capped
    assert _retry_after(format_datetime(datetime.now(UTC) - timedelta(minutes=5), usegmt=True)) == 0
    assert _retry_after("2.5") == 2.5 and _retry_after("600") == 60
    assert _retry_after(None) is None and _retry_after("soon") is None


def test_exhausted_attempts_raise_unavailable_without_the_password(erp, server, caplog):
    server.script = [step(502)] * 5
    hook = erp(max_attempts=3)
    hook._log = logging.getLogger("test.erp_hook")
    caplog.set_level(logging.DEBUG, logger="test.erp_hook")
    with pytest.raises(ErpUnavailable) as info:
        hook.send("POST", "/invoices", json={"n": 1}, idempotency_key="k")
    message = str(info.value)
    assert "POST /invoices" in message and "HTTP 502" in message and "3 attempts" in message
    assert hook.erp_conn_id in message and not isinstance(info.value, AirflowFailException)
    assert len(server.requests) == 3 and hook.retries == 2
    assert "retrying" in caplog.text and "-> 502" in caplog.text
    for text in (message, caplog.text):
        assert PASSWORD not in text and "Basic " not in text and "Authorization" not in text


def test_a_dropped_connection_is_retried(erp, server):
    server.script = ["drop", step(201, {"id": "D-3"})]
    hook = erp()
    assert hook.send("POST", "/invoices", idempotency_key="k-3").body == {"id": "D-3"}
    assert len(server.requests) == 2 and hook.calls == 2 and hook.retries == 1
    assert {r["headers"]["Idempotency-Key"] for r in server.requests} == {"k-3"}


def test_a_refused_connection_is_unavailable(erp):
    from include.zuora_emulator.server import free_port

    hook = erp(host=f"http://127.0.0.1:{free_port()}", max_attempts=2)
    with pytest.raises(ErpUnavailable, match="connection refused") as info:
        hook.send("GET", "/ping")
    assert "2 attempts" in str(info.value) and hook.calls == 2


@pytest.mark.parametrize("status", [401, 403])
def test_refused_credentials_fail_at_once(erp, server, status):
    server.script = [step(status, {"error": "bad credentials"})]
    hook = erp()
    with pytest.raises(ErpAuthError) as info:
        hook.send("POST", "/invoices", idempotency_key="k")
    assert isinstance(info.value, AirflowFailException)
    assert hook.erp_conn_id in str(info.value) and f"HTTP {status}" in str(info.value)
    assert PASSWORD not in str(info.value)
    assert len(server.requests) == 1 and hook.retries == 0


@pytest.mark.parametrize("status", [400, 404, 409, 422])
def test_other_refusals_are_answers_for_the_caller(erp, server, status):
    server.script = [step(status, {"errors": [{"code": "E1", "message": "no"}]})]
    hook = erp()
    answer = hook.send("POST", "/invoices", json={}, idempotency_key="k")
    assert answer.status == status and answer.body == {"errors": [{"code": "E1", "message": "no"}]}
    assert not answer.ok and not answer.replayed and answer.request_id is None
    assert len(server.requests) == 1


def test_an_answer_that_is_not_json_is_kept_as_text(erp, server):
    server.script = [(422, b"<html>refused</html>", {}), (204, b"", {"Request-Id": "r-1"})]
    hook = erp()
    assert hook.send("POST", "/invoices").body == {"error": "<html>refused</html>"}
    answer = hook.send("DELETE", "/invoices/1")
    assert answer.status == 204 and answer.body is None and answer.request_id == "r-1"


def test_the_rate_is_shared_by_every_hook_and_thread_of_a_connection(erp, server):
    first = erp(rate_per_second=20)
    second = ErpHook(first.erp_conn_id)
    started = time.monotonic()
    threads = [threading.Thread(target=lambda h=h: [h.send("GET", "/ping") for _ in range(5)]) for h in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(server.requests) == 10
    assert time.monotonic() - started >= 0.4  # 10 calls at 20/s: at least 9 gaps of 50 ms
    times = sorted(r["at"] for r in server.requests)
    assert times[-1] - times[0] >= 0.35


def test_a_spent_budget_sends_nothing(erp, server):
    asked = []

    def spent(n: int) -> int | None:
        asked.append(n)
        return None

    hook = erp(budget=spent, daily_call_budget=1000)
    with pytest.raises(ErpBudgetExhausted) as info:
        hook.send("POST", "/invoices", idempotency_key="k")
    message = str(info.value)
    assert hook.erp_conn_id in message and "1000" in message and "next run" in message
    assert asked == [1] and server.requests == [] and hook.calls == 0


def test_the_budget_is_taken_per_attempt_and_only_when_set(erp, server):
    asked = []

    def take(n: int) -> int | None:
        asked.append(n)
        return 10

    server.script = [step(503), step(200)]
    erp(budget=take, daily_call_budget=10).send("POST", "/invoices")
    assert asked == [1, 1]
    erp(budget=take).send("POST", "/invoices")  # no daily_call_budget: no budget
    assert asked == [1, 1]


def test_the_in_process_budget_counts_per_connection(erp, server):
    hook = erp(daily_call_budget=3)
    for _ in range(3):
        hook.send("POST", "/invoices")
    with pytest.raises(ErpBudgetExhausted):
        hook.send("POST", "/invoices")
    with pytest.raises(ErpBudgetExhausted):
        ErpHook(hook.erp_conn_id).send("POST", "/invoices")  # the connection's budget, not the hook's
    assert len(server.requests) == 3
    erp(daily_call_budget=3).send("POST", "/invoices")  # another connection has its own


def test_proxies_and_tls_settings_come_from_the_extra(erp, server):
    hook = erp(host="http://erp.invalid", proxies={"http": server.url}, verify=False)
    session = hook.get_conn()
    assert session.proxies == {"http": server.url} and session.verify is False
    assert hook.send("GET", "/invoices/7").status == 200
    assert server.requests[0]["path"] == "http://erp.invalid/invoices/7"  # the proxy got the absolute URL


def test_one_pooled_session_per_hook(erp):
    hook = erp()
    session = hook.get_conn()
    assert hook.get_conn() is session
    assert session.get_adapter("https://erp.example.com")._pool_maxsize == 16


def test_test_connection(erp, server):
    server.script = [step(404), step(401), step(503)]
    hook = erp(health_endpoint="/health")
    assert hook.test_connection() == (True, f"{server.url}/health answered HTTP 404")
    ok, message = hook.test_connection()
    assert not ok and "refused the credentials" in message and PASSWORD not in message
    assert hook.test_connection()[0] is False
    assert [r["path"] for r in server.requests] == ["/health"] * 3
    ok, message = erp(host="http://127.0.0.1:1").test_connection()
    assert not ok and "connection refused" in message and PASSWORD not in message
