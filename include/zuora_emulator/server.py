"""The emulator's HTTP front: Zuora's routes, auth, limits and faults over a threaded server.

The standard library's threaded server is enough here and lets a fault drop a connection for real,
which an ASGI server would turn into a polite 500.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from .dataquery import MAX_OUTPUT_ROWS, DataQuery
from .errors import ApiError
from .faults import FaultInjector
from .schema import (
    ACTION_TYPES,
    MEMO_TRANSFERRED_VALUES,
    OBJECTS,
    OBJECTS_WITHOUT_CUSTOM_FIELDS,
    TRANSFERRED_VALUES,
    ObjectSpec,
)
from .store import Query, Store, cached_tenant, default_anchor
from .timefmt import TenantClock, parse_tz

log = logging.getLogger("zuora_emulator")

MAX_ACTION_OBJECTS = 50
# Zuora's answer to an Object Query on an object the tenant has not enabled (Orders objects on a
# tenant without Orders, say) is undocumented: status 400, this code and the message
# "<Object> is not enabled for this tenant" are (inferred).
NOT_ENABLED_CODE = 50000020


class Limits:
    """Per-minute request budget and Object Query concurrency, with Zuora's headers."""

    def __init__(self, per_minute: int, concurrency: int) -> None:
        self.per_minute, self.concurrency = per_minute, concurrency
        self.lock = threading.Lock()
        self.window, self.used, self.in_flight, self.max_in_flight = 0, 0, 0, 0

    def take(self) -> dict[str, str]:
        now = time.time()
        with self.lock:
            window = int(now // 60)
            if window != self.window:
                self.window, self.used = window, 0
            self.used += 1
            reset = int(60 - now % 60) or 60
            headers = {
                "RateLimit-Limit": str(self.per_minute),
                "RateLimit-Remaining": str(max(0, self.per_minute - self.used)),
                "RateLimit-Reset": str(reset),
            }
            if self.used > self.per_minute:
                raise ApiError(
                    429,
                    70,
                    f"API Rate limit exceeded for the minute, retry after {reset} seconds",
                    {**headers, "Retry-After": str(reset)},
                )
            return headers

    def enter(self) -> dict[str, str]:
        with self.lock:
            if self.in_flight >= self.concurrency:
                raise ApiError(
                    429,
                    50000070,
                    "Concurrency limit exceeded for Object Query",
                    {
                        "Retry-After": "1",
                        "Concurrency-Limit-Type": "Object Query",
                        "Concurrency-Limit-Limit": str(self.concurrency),
                        "Concurrency-Limit-Remaining": "0",
                    },
                )
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return {
                "Concurrency-Limit-Type": "Object Query",
                "Concurrency-Limit-Limit": str(self.concurrency),
                "Concurrency-Limit-Remaining": str(self.concurrency - self.in_flight),
            }

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        # Requests still being answered keep counting down after a reset.
        self.in_flight = getattr(self, "in_flight", 0)
        self.requests: dict[str, int] = {}
        self.statuses: dict[str, int] = {}
        self.tokens_issued = 0
        self.records_served = 0
        self.untracked = 0  # API requests without a Zuora-Track-Id header
        self.entity_ids: set[str] = set()  # Zuora-Entity-Ids values seen
        # API requests (every route but admin and query files) being answered now, and the most at
        # once since the last reset; Limits.max_in_flight counts Object Query only, since start.
        self.max_in_flight = self.in_flight

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def add(self, route: str, status: int, records: int = 0, track: str | None = None) -> None:
        with self.lock:
            if route not in ("admin", "token", "query-file") and not track:
                self.untracked += 1
            self.requests[route] = self.requests.get(route, 0) + 1
            self.statuses[str(status)] = self.statuses.get(str(status), 0) + 1
            self.records_served += records


class Emulator:
    """One emulated tenant behind an HTTP server; usable in-process (tests) or from the CLI."""

    def __init__(
        self,
        scale: str = "small",
        seed: int = 42,
        tz: str = "America/Los_Angeles",
        faults: dict | None = None,
        latency_ms: int = 0,
        client_id: str = "demo-client",
        client_secret: str = "demo-secret",
        token_ttl: int = 3599,
        rate_limit_per_minute: int = 50_000,
        concurrency_limit: int = 80,
        anchor: date | None = None,
        workdir: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        mark_bumps_updated: bool = True,
        query_job_delay_s: float = 0.2,
        data_query_max_rows: int = MAX_OUTPUT_ROWS,
        disabled_objects: Iterable[str] = (),
        custom_fields: bool = True,
    ) -> None:
        self.scale, self.seed, self.anchor = scale, seed, anchor or default_anchor()
        self.clock = TenantClock(parse_tz(tz))
        self.client_id, self.client_secret, self.token_ttl = (
            client_id,
            client_secret,
            token_ttl,
        )
        self.latency_s = latency_ms / 1000
        self.faults = FaultInjector(faults)
        self.limits = Limits(rate_limit_per_minute, concurrency_limit)
        self.stats = Stats()
        self.tokens: dict[str, float] = {}
        self.tokens_lock = threading.Lock()
        self.mark_bumps_updated = mark_bumps_updated
        self.host, self.port = host, port
        self._own_workdir = workdir is None
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix="zuora-emulator-"))
        self.query_job_delay_s = query_job_delay_s
        self.data_query_max_rows = data_query_max_rows
        self.httpd: ThreadingHTTPServer | None = None
        self.configure_tenant(disabled_objects=disabled_objects, custom_fields=custom_fields)

    # ---------- lifecycle ----------
    def start(self) -> Emulator:
        template = cached_tenant(self.scale, self.seed, self.anchor)
        self.store = Store.working_copy(template, self.workdir, self.clock, self.seed)
        self.dataquery = DataQuery(
            self.store, self.workdir / "query-files", self.query_job_delay_s, self.data_query_max_rows
        )
        handler = type("Handler", (Handler,), {"emulator": self})
        self.httpd = Server((self.host, self.port), handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, name="zuora-emulator", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.httpd:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ---------- controls shared by the admin routes and in-process tests ----------
    def issue_token(self) -> str:
        token = secrets.token_hex(16)
        with self.tokens_lock:
            self.tokens[token] = time.time() + self.token_ttl
            self.stats.tokens_issued += 1
        return token

    def expire_tokens(self) -> None:
        with self.tokens_lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def check_token(self, header: str | None) -> str:
        token = header[7:].strip() if header and header[:7].lower() == "bearer " else None
        with self.tokens_lock:
            expiry = self.tokens.get(token or "")
        if expiry is None or expiry < time.time():
            raise ApiError(401, 0, "Authentication error")
        return token  # type: ignore[return-value]

    def set_faults(self, profile: dict | None) -> None:
        self.faults = FaultInjector(profile)

    def configure_tenant(
        self,
        disabled_objects: Iterable[str] | None = None,
        custom_fields: bool | None = None,
    ) -> dict:
        """The tenant's features: objects it has not enabled (every Object Query on them answers
        400) and whether it defines custom fields (`crmAccountId__c`...). None keeps a setting."""
        disabled = getattr(self, "disabled_objects", frozenset())
        if disabled_objects is not None:
            if isinstance(disabled_objects, str) or not isinstance(disabled_objects, Iterable):
                raise ValueError("disabled_objects is a list of endpoints")
            disabled = frozenset(disabled_objects)
            unknown = disabled - set(OBJECTS)
            if unknown:
                raise ValueError(f"unknown objects {sorted(unknown)}; use endpoints such as {', '.join(OBJECTS)}")
        if custom_fields is not None and not isinstance(custom_fields, bool):
            raise ValueError("custom_fields must be true or false")
        self.disabled_objects = disabled
        self.custom_fields = getattr(self, "custom_fields", True) if custom_fields is None else custom_fields
        return self.tenant_view()

    def tenant_view(self) -> dict:
        return {"disabled_objects": sorted(self.disabled_objects), "custom_fields": self.custom_fields}

    @property
    def objects(self) -> dict[str, ObjectSpec]:
        """The objects as this tenant's API shows them (custom fields or not)."""
        return OBJECTS if self.custom_fields else OBJECTS_WITHOUT_CUSTOM_FIELDS

    def check_enabled(self, obj: str) -> None:
        if obj in self.disabled_objects:
            raise ApiError(400, NOT_ENABLED_CODE, f"{OBJECTS[obj].label} is not enabled for this tenant")

    def stats_view(self) -> dict:
        s = self.stats
        with s.lock:
            return {
                "requests": dict(s.requests),
                "statuses": dict(s.statuses),
                "tokens_issued": s.tokens_issued,
                "records_served": s.records_served,
                "untracked_requests": s.untracked,
                "entity_ids": sorted(s.entity_ids),
                "max_in_flight": self.limits.max_in_flight,
                "max_requests_in_flight": s.max_in_flight,
                "rate_limited": s.statuses.get("429", 0),
                "faults_injected": dict(self.faults.counts),
            }


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


def _error_json(exc: ApiError, request_id: str) -> dict:
    if exc.status == 401:
        return {"message": exc.message}
    return exc.body(request_id)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ZuoraEmulator/1.0"
    # Headers and body leave in one write (flushed after each request) and without Nagle's delay;
    # two small writes on a keep-alive socket otherwise stall ~40 ms on the client's delayed ACK.
    wbufsize = 1 << 16
    emulator: Emulator

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    # ---------- plumbing ----------
    def _send(self, status: int, body: bytes, headers: dict[str, str], content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: object, headers: dict[str, str]) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        self._send(status, body, headers, "application/json; charset=utf-8")

    def _body(self) -> bytes:
        return self._raw_body

    def _json_body(self) -> dict | list:
        try:
            return json.loads(self._body() or b"null")
        except json.JSONDecodeError as exc:
            raise ApiError(400, 50000020, f"Malformed JSON body: {exc.msg}") from exc

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def _dispatch(self, method: str) -> None:
        emu = self.emulator
        # Read the body before anything can answer early (a fault, a 401): left unread on a
        # keep-alive socket it would be parsed as the next request.
        length = int(self.headers.get("Content-Length") or 0)
        self._raw_body = self.rfile.read(length) if length else b""
        self._fault = None
        request_id = str(uuid.uuid4())
        headers = {"Zuora-Request-Id": request_id}
        track = self.headers.get("Zuora-Track-Id")
        if track:
            headers["Zuora-Track-Id"] = track[:64]
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        route, records, status = path, 0, 200
        counted = False
        try:
            if path.startswith("/_admin"):
                route = "admin"
                self._admin(method, path, url.query, headers)
                return
            if path.startswith("/query/files/"):
                route = "query-file"
                self._query_file(path.rsplit("/", 1)[-1], headers)
                return
            emu.stats.enter()
            counted = True
            fault = emu.faults.decide(path, method) if path != "/oauth/token" else None
            self._fault = fault
            if fault is not None:
                if fault.kind == "drop":
                    self.close_connection = True
                    status = 0
                    return
                if fault.kind == "slow":
                    time.sleep(fault.delay_ms / 1000)
                elif fault.kind == "429":
                    raise ApiError(
                        429,
                        70,
                        f"API Rate limit exceeded for the minute, retry after {fault.retry_after} seconds",
                        {"Retry-After": str(fault.retry_after)},
                    )
                elif fault.kind == "5xx":
                    raise ApiError(fault.status, fault.code, "Internal error, please retry")
                elif fault.kind == "token_expiry":
                    emu.expire_tokens()
                elif fault.kind == "not_json":
                    self._send(200, b"<html>gateway</html>", headers, "text/html")
                    return
            if emu.latency_s:
                time.sleep(emu.latency_s)
            if path == "/oauth/token" and method == "POST":
                route = "token"
                self._token(headers)
                return
            emu.check_token(self.headers.get("Authorization"))
            headers.update(emu.limits.take())
            if path.startswith("/object-query/") and method == "GET":
                route = "object-query"
                headers.update(emu.limits.enter())
                try:
                    records = self._object_query(path, url.query, headers)
                finally:
                    emu.limits.leave()
            elif path == "/v1/action/update" and method == "POST":
                route = "action-update"
                self._action_update(headers)
            elif (m := re.fullmatch(r"/v1/(credit|debit)-memos/([^/]+)", path)) and method == "PUT":
                route = "memo-update"
                self._memo_update(f"{m.group(1)}-memos", unquote(m.group(2)), headers)
            elif path == "/query/jobs" and method == "POST":
                route = "query-jobs"
                self._query_submit(headers)
            elif (m := re.fullmatch(r"/query/jobs/([^/]+)", path)) and method == "GET":
                route = "query-jobs"
                self._query_poll(m.group(1), headers)
            else:
                raise ApiError(404, 50000040, f"No route for {method} {path}")
        except ApiError as exc:
            status = exc.status
            self._json(exc.status, _error_json(exc, request_id), {**headers, **exc.headers})
        except (BrokenPipeError, ConnectionResetError):
            status = 0
        except Exception as exc:  # an emulator bug must look like Zuora's 500, and be logged
            log.exception("emulator error on %s", self.path)
            status = 500
            self._json(
                500,
                ApiError(500, 50000060, f"Internal error: {exc}").body(request_id),
                headers,
            )
        finally:
            if counted:
                emu.stats.leave()
            self.emulator.stats.add(route, status, records, track)
            if self.headers.get("Zuora-Entity-Ids"):
                self.emulator.stats.entity_ids.add(self.headers["Zuora-Entity-Ids"])

    # ---------- routes ----------
    def _token(self, headers: dict[str, str]) -> None:
        emu = self.emulator
        form = dict(parse_qsl(self._body().decode()))
        if form.get("grant_type") != "client_credentials":
            raise ApiError(400, 0, "Unsupported grant type")
        if form.get("client_id") != emu.client_id or form.get("client_secret") != emu.client_secret:
            raise ApiError(401, 0, "Authentication error")
        token = emu.issue_token()
        self._json(
            200,
            {
                "access_token": token,
                "token_type": "bearer",
                "expires_in": emu.token_ttl,
                "scope": "entity.emulator platform.write service.usage.delete",
                "jti": token[:16],
            },
            headers,
        )

    def _parse_query(self, obj: str, raw: str) -> Query:
        emu = self.emulator
        spec = emu.objects.get(obj)
        if spec is None:
            raise ApiError(404, 50000040, f"Unknown object '{obj}'")
        emu.check_enabled(obj)
        params = parse_qsl(raw, keep_blank_values=True)
        store = self.emulator.store
        q = Query(spec=spec, fields=[n for n, _ in spec.fields])
        requested: list[str] = []
        child_fields: dict[str, list[str]] = {}
        expand: list[str] = []
        filters_seen = False
        for key, value in params:
            lkey = key.lower()
            if lkey == "pagesize":
                try:
                    q.page_size = int(value)
                except ValueError:
                    q.page_size = 0
                if not 1 <= q.page_size <= 99:
                    raise ApiError(
                        400,
                        50000021,
                        f"Invalid pageSize '{value}': must be between 1 and 99",
                    )
            elif lkey in ("fields[]", f"{obj}.fields[]"):
                requested.extend(v.strip() for v in value.split(",") if v.strip())
            elif lkey == "filter[]":
                filters_seen = True
                q.filters.append(store.parse_filter(spec, value))
            elif lkey == "sort[]":
                name, _, direction = value.rpartition(".")
                canonical = spec.by_lower.get(name.lower())
                if canonical is None or direction.upper() not in ("ASC", "DESC"):
                    raise ApiError(400, 50000027, f"Invalid sort parameter: {value}")
                q.sort_field, q.descending = canonical, direction.upper() == "DESC"
            elif lkey == "expand[]":
                expand.extend(v.strip().lower() for v in value.split(",") if v.strip())
            elif lkey.endswith(".fields[]"):
                child_fields[lkey[: -len(".fields[]")]] = [v.strip() for v in value.split(",") if v.strip()]
            elif lkey == "includenullfields":
                q.include_nulls = value.lower() == "true"
        if spec.filter_required and not filters_seen:
            raise ApiError(400, 50000021, f"A filter[] parameter is required to query {obj}")
        if requested:
            q.fields = self._canonical(spec, requested)
        for name in expand:
            if name not in spec.children:
                raise ApiError(400, 50000027, f"Invalid expand parameter: {name}")
            emu.check_enabled(spec.children[name][0])
            child = emu.objects[spec.children[name][0]]
            names = child_fields.get(name)
            q.expand[name] = self._canonical(child, names) if names else [n for n, _ in child.fields]
        return q

    @staticmethod
    def _canonical(spec, names: list[str]) -> list[str]:
        out = []
        for name in names:
            # Relations (billTo, invoiceItems...) are not fields: only expand[] names them.
            canonical = spec.by_lower.get(name.lower())
            if canonical is None:
                raise ApiError(400, 50000027, f"Invalid fields parameter: {name}")
            out.append(canonical)
        # Zuora answers in its own field order, not the requested one.
        order = {n: i for i, (n, _) in enumerate(spec.fields)}
        return sorted(dict.fromkeys(out), key=order.__getitem__)

    def _object_query(self, path: str, raw: str, headers: dict[str, str]) -> int:
        parts = path.split("/")
        obj = parts[2]
        fault = self._fault.kind if self._fault else None
        if len(parts) == 4:
            q = self._parse_query(obj, raw)
            rec = self.emulator.store.get(q, unquote(parts[3]))
            if rec is None:
                raise ApiError(404, 50000040, f"{obj} record not found: {unquote(parts[3])}")
            if fault == "missing_id":
                rec.pop("id", None)
            self._json(200, rec, headers)
            return 1
        if len(parts) != 3:
            raise ApiError(404, 50000040, f"No route for GET {path}")
        q = self._parse_query(obj, raw)
        cursor = dict(parse_qsl(raw)).get("cursor")
        records, next_cursor = self.emulator.store.page(q, cursor)
        if fault == "missing_id" and records:
            records[0].pop("id", None)
        next_cursor = self.emulator.faults.next_page(cursor, next_cursor, fault == "repeat_cursor")
        payload = {"nextPage": next_cursor, "data": records} if next_cursor else {"data": records}
        self._json(200, payload, headers)
        return len(records)

    def _action_update(self, headers: dict[str, str]) -> None:
        body = self._json_body()
        if not isinstance(body, dict) or body.get("type") not in ACTION_TYPES:
            kinds = ", ".join(ACTION_TYPES)
            raise ApiError(
                400,
                50000020,
                f"'type' must be one of {kinds}; memos use PUT /v1/<memos>/{{key}}",
            )
        objects = body.get("objects")
        if not isinstance(objects, list) or not objects:
            raise ApiError(400, 50000020, "'objects' must be a non-empty list")
        if len(objects) > MAX_ACTION_OBJECTS:
            raise ApiError(
                400,
                50000022,
                f"At most {MAX_ACTION_OBJECTS} objects per call, got {len(objects)}",
            )
        obj = ACTION_TYPES[body["type"]]
        results = []
        for item in objects:
            item = item if isinstance(item, dict) else {}
            oid = item.get("Id")
            unknown = set(item) - {"Id", "TransferredToAccounting"}
            value = item.get("TransferredToAccounting")
            if unknown:
                results.append(
                    self._fail(
                        oid,
                        "INVALID_FIELD",
                        f"Field not updatable here: {sorted(unknown)[0]}",
                    )
                )
            elif value not in TRANSFERRED_VALUES:
                results.append(
                    self._fail(
                        oid,
                        "INVALID_VALUE",
                        f"Invalid value for TransferredToAccounting: {value}",
                    )
                )
            elif not oid or not self.emulator.store.set_transferred(obj, oid, value, self.emulator.mark_bumps_updated):
                results.append(self._fail(oid, "INVALID_ID", f"Invalid id: {oid}"))
            else:
                results.append({"Id": oid, "Success": True})
        self._json(200, results, headers)

    @staticmethod
    def _fail(oid: object, code: str, message: str) -> dict:
        return {
            "Id": oid,
            "Success": False,
            "Errors": [{"Code": code, "Message": message}],
        }

    def _memo_update(self, obj: str, key: str, headers: dict[str, str]) -> None:
        body = self._json_body()
        if self._fault is not None and self._fault.kind == "memo_refuse":
            label = OBJECTS[obj].label
            reason = {"code": 53000020, "message": f"{label} {key} cannot be updated now (emulated refusal)"}
            self._json(200, {"success": False, "reasons": [reason]}, headers)
            return
        value = body.get("transferredToAccounting") if isinstance(body, dict) else None
        if value not in MEMO_TRANSFERRED_VALUES:
            raise ApiError(400, 53000020, f"Invalid value for transferredToAccounting: {value}")
        oid = self.emulator.store.set_transferred(obj, key, value, self.emulator.mark_bumps_updated)
        if oid is None:
            raise ApiError(404, 50000040, f"{obj} not found: {key}")
        self._json(200, {"success": True, "id": oid, "transferredToAccounting": value}, headers)

    def _files_url(self) -> str:
        return f"http://{self.headers.get('Host') or self.emulator.base_url[7:]}/query/files"

    def _query_submit(self, headers: dict[str, str]) -> None:
        body = self._json_body()
        if not isinstance(body, dict) or not isinstance(body.get("query"), str) or not body["query"].strip():
            raise ApiError(400, 50000020, "'query' is required")
        if str(body.get("outputFormat", "CSV")).upper() != "CSV" or str(body.get("compression", "NONE")) != "NONE":
            raise ApiError(
                400,
                50000020,
                "The emulator serves outputFormat CSV with compression NONE only",
            )
        job = self.emulator.dataquery.submit(body["query"])
        self._json(200, {"data": job.view(self._files_url())}, headers)

    def _query_poll(self, job_id: str, headers: dict[str, str]) -> None:
        job = self.emulator.dataquery.jobs.get(job_id)
        if job is None:
            raise ApiError(404, 50000040, f"Query job not found: {job_id}")
        self._json(200, {"data": job.view(self._files_url())}, headers)

    def _query_file(self, name: str, headers: dict[str, str]) -> None:
        path = self.emulator.dataquery.file(name)
        if path is None:
            raise ApiError(404, 50000040, f"No such file: {name}")
        self._send(200, path.read_bytes(), headers, "text/csv; charset=utf-8")

    # ---------- admin ----------
    def _admin(self, method: str, path: str, raw: str, headers: dict[str, str]) -> None:
        emu = self.emulator
        if path == "/_admin/health":
            self._json(
                200,
                {
                    "ok": True,
                    "scale": emu.scale,
                    "seed": emu.seed,
                    "anchor": emu.anchor.isoformat(),
                    **emu.tenant_view(),
                },
                headers,
            )
        elif path == "/_admin/tenant":
            if method in ("PUT", "POST"):
                body = self._json_body()
                if not isinstance(body, dict) or set(body) - {"disabled_objects", "custom_fields"}:
                    raise ApiError(
                        400,
                        50000020,
                        "Body must be {'disabled_objects': [endpoints], 'custom_fields': bool}, either optional",
                    )
                try:
                    emu.configure_tenant(body.get("disabled_objects"), body.get("custom_fields"))
                except (TypeError, ValueError) as exc:
                    raise ApiError(400, 50000020, f"Invalid tenant settings: {exc}") from exc
            self._json(200, emu.tenant_view(), headers)
        elif path == "/_admin/counts":
            self._json(200, emu.store.counts(), headers)
        elif path.startswith("/_admin/truth/") and method == "GET":
            obj = path.rsplit("/", 1)[-1]
            if obj not in OBJECTS:
                raise ApiError(404, 50000040, f"Unknown object '{obj}'")
            spec = emu.objects[obj]
            filters = [emu.store.parse_filter(spec, v) for k, v in parse_qsl(raw) if k == "filter[]"]
            self._json(200, {"data": emu.store.truth(obj, filters, spec)}, headers)
        elif path == "/_admin/mutate" and method == "POST":
            body = self._json_body()
            ops = body.get("ops") if isinstance(body, dict) else None
            if not isinstance(ops, list):
                raise ApiError(
                    400,
                    50000020,
                    "Body must be {'ops': [...], 'at': optional ISO datetime}",
                )
            at = emu.clock.parse(body["at"]) if body.get("at") else None
            self._json(200, {"results": emu.store.mutate(ops, at)}, headers)
        elif path == "/_admin/stats":
            if method == "POST":
                emu.stats.reset()
            self._json(200, emu.stats_view(), headers)
        elif path == "/_admin/faults":
            if method in ("PUT", "POST"):
                try:
                    emu.set_faults(self._json_body() or None)
                except (TypeError, ValueError, AttributeError) as exc:
                    raise ApiError(400, 50000020, f"Invalid fault profile: {exc}") from exc
            self._json(200, emu.faults.profile, headers)
        elif path == "/_admin/expire-tokens" and method == "POST":
            emu.expire_tokens()
            self._json(200, {"expired": True}, headers)
        else:
            raise ApiError(404, 50000040, f"No admin route for {method} {path}")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for starting an emulator process (tests, benchmarks)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
