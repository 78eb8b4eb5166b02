"""ZuoraHook against the emulator over loopback: tokens, retries, paging, marking, logging."""

from __future__ import annotations

import json
import logging

import pytest
from zuora_etl.hooks.zuora import ZuoraApiError, ZuoraDataError, ZuoraHook


@pytest.fixture
def hook(fresh_emulator, monkeypatch):
    def make(**extra) -> ZuoraHook:
        monkeypatch.setenv("AIRFLOW_CONN_ZUORA_DEFAULT", json.dumps({
            "conn_type": "http", "host": fresh_emulator.base_url, "login": "demo-client",
            "password": "demo-secret", "extra": {"backoff_seconds": 0.01, "max_attempts": 4, **extra},
        }))  # fmt: skip
        return ZuoraHook()

    return make


ASC = [("pageSize", "99"), ("sort[]", "updatedDate.ASC")]


def capture(h: ZuoraHook, caplog) -> ZuoraHook:
    """Route the hook's log to a plain logger that pytest captures, at DEBUG (every request)."""
    h._log = logging.getLogger("test.zuora_hook")
    caplog.set_level(logging.DEBUG, logger="test.zuora_hook")
    return h


def test_one_token_serves_many_calls_and_is_never_logged(hook, fresh_emulator, caplog):
    h = capture(hook(), caplog)
    pages = list(h.paginate("invoices", ASC))
    assert "GET /object-query/invoices -> 200" in caplog.text and "track zuora-etl-" in caplog.text
    assert h._token not in caplog.text and "demo-secret" not in caplog.text
    assert sum(len(p) for p in pages) == len(fresh_emulator.store.truth("invoices"))
    assert h.token_calls == 1 and fresh_emulator.stats_view()["tokens_issued"] == 1
    assert h.api_calls == len(pages)


def test_an_expired_token_is_refreshed_once_and_the_call_retried(hook, fresh_emulator):
    h = hook()
    list(h.paginate("accounts", ASC))
    fresh_emulator.expire_tokens()
    assert list(h.paginate("accounts", ASC))
    assert h.token_calls == 2


def test_wrong_credentials_fail_clearly_without_leaking_the_secret(fresh_emulator, monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_DEFAULT", json.dumps({
        "conn_type": "http", "host": fresh_emulator.base_url, "login": "demo-client", "password": "s3cr3t-wrong",
        "extra": {"max_attempts": 1},
    }))  # fmt: skip
    h = capture(ZuoraHook(), caplog)
    with pytest.raises(ZuoraApiError, match="client id") as info:
        list(h.paginate("accounts", ASC))
    assert "s3cr3t-wrong" not in caplog.text and "s3cr3t-wrong" not in str(info.value)


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "429", "every": 1, "max": 2, "retry_after": 0},
        {"kind": "5xx", "every": 1, "max": 2, "status": 503, "code": 50000061},
        {"kind": "drop", "every": 1, "max": 2},
        {"kind": "token_expiry", "every": 1, "max": 2},
    ],
)
def test_transient_faults_are_retried(hook, fresh_emulator, rule):
    fresh_emulator.set_faults({"rules": [rule]})
    h = hook()
    assert next(iter(h.paginate("accounts", [("pageSize", "5")])))
    assert fresh_emulator.stats_view()["faults_injected"][rule["kind"]] == 2


def test_retry_after_is_honoured(hook, fresh_emulator):
    import time

    fresh_emulator.set_faults({"rules": [{"kind": "429", "every": 1, "max": 1, "retry_after": 1}]})
    started = time.monotonic()
    list(hook().paginate("accounts", [("pageSize", "5")]))
    assert time.monotonic() - started >= 1.0


def test_gives_up_after_max_attempts(hook, fresh_emulator):
    fresh_emulator.set_faults({"rules": [{"kind": "5xx", "every": 1}]})
    h = hook(max_attempts=3)
    with pytest.raises(ZuoraApiError, match="HTTP 500"):
        list(h.paginate("accounts", ASC))
    assert h.api_calls == 3


def test_caller_errors_are_not_retried(hook):
    h = hook()
    with pytest.raises(ZuoraApiError) as info:
        list(h.paginate("invoices", [("filter[]", "amount.GE:1")]))
    assert info.value.status == 400 and info.value.code == 50000027 and not info.value.retryable
    assert h.api_calls == 1


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ([{"data": [{"id": "a"}], "nextPage": "c1"}, {"data": [{"id": "b"}], "nextPage": "c1"}], "repeated a cursor"),
        ([{"data": [{"id": "a"}, {"name": "no id"}]}], "without id"),
        ([{"records": []}], "no data list"),
        ([["not", "an", "object"]], "no data list"),
    ],
)
def test_paging_anomalies_are_errors_never_the_end_of_the_data(hook, monkeypatch, answers, message):
    h = hook()
    replies = iter(answers)
    monkeypatch.setattr(h, "request", lambda *a, **k: next(replies))
    with pytest.raises(ZuoraDataError, match=message) as info:
        list(h.paginate("accounts", []))
    assert not info.value.retryable and not info.value.fatal


def test_a_record_without_a_required_field_is_an_error(hook, monkeypatch):
    h = hook()
    monkeypatch.setattr(h, "request", lambda *a, **k: {"data": [{"id": "a"}]})
    with pytest.raises(ZuoraDataError, match="without updatedDate"):
        list(h.paginate("accounts", [], require=("id", "updatedDate")))


def test_a_memo_put_answered_200_with_success_false_is_a_refusal(hook, monkeypatch):
    h = hook()
    answer = {"success": False, "reasons": [{"code": 53000020, "message": "memo is locked"}]}
    monkeypatch.setattr(h, "request", lambda *a, **k: answer)
    with pytest.raises(ZuoraApiError, match="memo is locked") as info:
        h.update_memo("credit-memos", "CM-1", {"transferredToAccounting": "Yes"})
    assert not info.value.retryable and not info.value.fatal


def test_wrong_credentials_and_invalid_fields_are_fatal(fresh_emulator, hook, monkeypatch):
    h = hook()
    with pytest.raises(ZuoraApiError) as info:
        list(h.paginate("invoices", [("fields[]", "id,noSuchField")]))
    assert info.value.fatal and info.value.status == 400
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_DEFAULT", json.dumps({
        "conn_type": "http", "host": fresh_emulator.base_url, "login": "demo-client", "password": "wrong",
    }))  # fmt: skip
    with pytest.raises(ZuoraApiError) as info:
        list(ZuoraHook().paginate("accounts", ASC))
    assert info.value.fatal and info.value.status == 401


def test_a_host_that_does_not_answer_is_named_with_the_reason(monkeypatch):
    from include.zuora_emulator.server import free_port

    port = free_port()
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_DEFAULT", json.dumps({
        "conn_type": "http", "host": f"http://127.0.0.1:{port}", "login": "a", "password": "hidden-secret",
        "extra": {"max_attempts": 1},
    }))  # fmt: skip
    with pytest.raises(ZuoraApiError) as info:
        list(ZuoraHook().paginate("accounts", ASC))
    assert f"127.0.0.1:{port} failed: connection refused" in str(info.value)
    assert "hidden-secret" not in str(info.value) and info.value.retryable


def test_track_id_and_entity_header_on_every_call(hook, fresh_emulator):
    list(hook(entity_id="ent-42").paginate("accounts", ASC))
    stats = fresh_emulator.stats_view()
    assert stats["untracked_requests"] == 0 and stats["entity_ids"] == ["ent-42"]


def test_action_update_batches_by_50_and_reports_each(hook, fresh_emulator):
    ids = [r["id"] for r in fresh_emulator.store.truth("payments")[:120]] + ["0" * 32]
    results = hook().action_update("Payment", [{"Id": i, "TransferredToAccounting": "Yes"} for i in ids])
    assert [r["Success"] for r in results] == [True] * 120 + [False]
    assert fresh_emulator.stats_view()["requests"]["action-update"] == 3


def test_get_record_and_missing_record(hook, fresh_emulator):
    h = hook()
    first = fresh_emulator.store.truth("accounts")[0]
    assert h.get_record("accounts", first["accountNumber"], ["id"]) == {"id": first["id"]}
    assert h.get_record("accounts", "nope") is None


def test_test_connection_reports_success_and_failure(hook, fresh_emulator, monkeypatch):
    assert hook().test_connection()[0] is True
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_DEFAULT", json.dumps({
        "conn_type": "http", "host": fresh_emulator.base_url, "login": "x", "password": "y",
    }))  # fmt: skip
    ok, message = ZuoraHook().test_connection()
    assert not ok and "401" in message


# ---------- the HttpHook base: session from the connection, no Basic auth, extras not headers ----------


class Recorder:
    """A Zuora stand-in on loopback that records what it receives: a token for POST /oauth/token,
    one page of one account for anything else."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[dict] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                recorder.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                          "body": body})  # fmt: skip
                if self.path.endswith("/oauth/token"):
                    answer = {"access_token": "tok-1", "expires_in": 3599}
                else:
                    answer = {"data": [{"id": "a", "updatedDate": "2024-01-01T00:00:00+00:00"}]}
                payload = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def api_calls(self) -> list[dict]:
        return [r for r in self.requests if not r["path"].endswith("/oauth/token")]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def recorder():
    r = Recorder()
    yield r
    r.close()


def use(monkeypatch, conn_id: str = "zuora_default", **fields) -> ZuoraHook:
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps({
        "conn_type": "zuora", "login": "client-7", "password": "s3cr3t-client", **fields,
    }))  # fmt: skip
    return ZuoraHook(conn_id)


def test_the_client_secret_goes_only_to_the_token_call_never_as_basic_auth(recorder, monkeypatch, tmp_path):
    # A ~/.netrc entry for the host must not add Basic auth either (requests reads it with trust_env).
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-pass\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    h = use(monkeypatch, host=recorder.url)
    assert list(h.paginate("accounts", ASC))
    token, api = recorder.requests[0], recorder.api_calls()
    assert token["path"] == "/oauth/token" and "Authorization" not in token["headers"]
    assert "client_id=client-7" in token["body"] and "client_secret=s3cr3t-client" in token["body"]
    assert api and all(r["headers"]["Authorization"] == "Bearer tok-1" for r in api)
    assert not any("s3cr3t-client" in json.dumps(r["headers"]) or "netrc" in json.dumps(r["headers"]) for r in api)
    assert not hasattr(h.get_conn().auth, "password")  # not HttpHook's HTTPBasicAuth


def test_zuora_extras_are_settings_not_headers(recorder, monkeypatch):
    extra = {"entity_id": "ent-9", "zuora_version": "2025-01-01", "page_size": 20, "max_attempts": 2,
             "backoff_seconds": 0.01, "timezone": "UTC", "data_center": None, "X-Custom-Header": "yes"}  # fmt: skip
    h = use(monkeypatch, host=recorder.url, extra=extra)
    list(h.paginate("accounts", []))
    assert (h.page_size, h.max_attempts, h.backoff_s) == (20, 2, 0.01)
    for r in recorder.requests:
        sent = {k.lower() for k in r["headers"]}
        assert not sent & {"entity_id", "zuora_version", "page_size", "max_attempts", "backoff_seconds", "timezone",
                           "data_center"}  # fmt: skip
        assert r["headers"]["X-Custom-Header"] == "yes"
    api = recorder.api_calls()[0]
    assert api["headers"]["Zuora-Entity-Ids"] == "ent-9" and api["headers"]["Zuora-Version"] == "2025-01-01"
    assert "pageSize=20" in api["path"]


def test_proxies_and_tls_settings_come_from_the_connection(recorder, monkeypatch):
    h = use(monkeypatch, host="http://zuora.invalid", extra={"proxies": {"http": recorder.url}, "verify": False,
                                                             "trust_env": False, "max_attempts": 1})  # fmt: skip
    session = h.get_conn()
    assert session.proxies == {"http": recorder.url} and session.verify is False and session.trust_env is False
    assert "proxies" not in session.headers and "verify" not in session.headers
    assert list(h.paginate("accounts", ASC))
    # Both the token and the API call went through the proxy, which received absolute URLs.
    assert [r["path"].split("?")[0] for r in recorder.requests] == [
        "http://zuora.invalid/oauth/token",
        "http://zuora.invalid/object-query/accounts",
    ]


def test_one_pooled_keep_alive_session_per_hook(recorder, monkeypatch):
    from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter

    h = use(monkeypatch, host=recorder.url)
    session = h.get_conn()
    assert h.get_conn() is session
    for scheme in ("http://x", "https://x"):
        adapter = session.get_adapter(scheme)
        assert isinstance(adapter, TCPKeepAliveAdapter) and adapter._pool_maxsize == 16
        assert adapter._pool_connections == 4


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"host": "http://127.0.0.1:8780"}, "http://127.0.0.1:8780"),
        ({"host": "http://127.0.0.1", "port": 8780}, "http://127.0.0.1:8780"),
        ({"host": "http://127.0.0.1:8780/", "port": 8780}, "http://127.0.0.1:8780"),
        ({"host": "127.0.0.1", "schema": "http", "port": 8780}, "http://127.0.0.1:8780"),
        ({"host": "rest.na.zuora.com"}, "https://rest.na.zuora.com"),  # Zuora is TLS only: https by default
        ({"host": "rest.na.zuora.com", "schema": "HTTPS"}, "https://rest.na.zuora.com"),
        ({"extra": {"data_center": "https://rest.eu.zuora.com"}}, "https://rest.eu.zuora.com"),
    ],
)
def test_the_base_url_from_host_schema_port_or_data_center(monkeypatch, fields, expected):
    h = use(monkeypatch, **fields)
    h.get_conn()
    assert h.base_url == expected


def test_httphook_run_is_authenticated_too(recorder, monkeypatch):
    h = use(monkeypatch, host=recorder.url)
    response = h.run("/object-query/accounts")
    assert response.json()["data"][0]["id"] == "a"
    assert recorder.api_calls()[0]["headers"]["Authorization"] == "Bearer tok-1"
