"""The reference ERP's HTTP front: routes, HTTP Basic auth, idempotency keys and faults.

Written on the standard library (`http.server.ThreadingHTTPServer`, `sqlite3`, `json`) on purpose:
a `lose_answer_every` fault must drop the connection for real after committing, which an ASGI
server would turn into a polite 500, and nothing has to be installed for a demo or a test run.

Routes (JSON in and out; every answer has `Content-Type: application/json` and a `Request-Id`):

    POST  /api/v1/{collection}                         create            201 | 409 | 422 | 400
    POST  /api/v1/{collection}/batch                   create up to 100  200 {"results": [...]}
    PUT   /api/v1/{collection}/{external_id}           replace           200 | 404 | 422 | 400
    PATCH /api/v1/{collection}/{external_id}           shallow merge     200 | 404 | 422 | 400
    POST  /api/v1/{collection}/{external_id}/cancel    cancel            200 | 404 | 400
    GET   /api/v1/{collection}/{external_id}           one document      200 | 404
    GET   /api/v1/{collection}                         all, by ERP id    200
    GET|PUT /_admin/faults, GET /_admin/stats, POST /_admin/reset

Every route needs HTTP Basic auth (401 `{"error": "unauthorized"}`). A request with the wrong
method on a known path answers 405 with `Allow`; an unknown path 404.

A document's external id is `body["external_id"]`, or the inner object's when the body is one key
holding an object (`{"invoice": {"external_id": ...}}`). Checks run in this order: the body is a
JSON object (400), the external id (422), the `reject` fault (422), then the lookup (404/409), so
a rejected document answers 422 even where it does not exist (a PATCH's external id is checked on
the merged document, after the lookup). PUT and PATCH of a canceled
document make it active again. In a batch, a document that is not an object is a per-document 422,
and a 409 result carries the existing document's `id` as the single create's 409 does.

Idempotency-Key (1..255 characters) on POST/PUT/PATCH: the answer is stored with a fingerprint of
(method, path, canonical JSON body) in the same transaction as the change. Only answers of requests
that were carried out are stored, as Stripe does: a 2xx whose documents all succeeded. A refusal
(400, 404, 409, 422, a batch with a refused document), a 429 or a 5xx changed nothing, so the same
request sent again, once the cause is fixed, is processed. Keys live in the SQLite file, so they
survive a restart on the same db.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import re
import shutil
import socket
import tempfile
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .faults import Faults
from .store import Exists, NotFound, Store, external_id_of, merge

log = logging.getLogger("reference_erp")

MAX_BATCH = 100
MAX_BODY_BYTES = 16 << 20
MAX_KEY_CHARS = 255
_COLLECTION = r"(?P<collection>[a-z][a-z0-9_]*)"
_EXTERNAL_ID = r"(?P<external_id>[^/]+)"
# (pattern, {method: handler name}, route label for the stats); a path may match several patterns
# (`/batch` is also a document named "batch" for GET/PUT/PATCH): the one that takes the method wins.
ROUTES = [
    (re.compile(rf"/api/v1/{_COLLECTION}"), {"GET": "list", "POST": "create"}, "/api/v1/{collection}"),
    (re.compile(rf"/api/v1/{_COLLECTION}/batch"), {"POST": "batch"}, "/api/v1/{collection}/batch"),
    (
        re.compile(rf"/api/v1/{_COLLECTION}/{_EXTERNAL_ID}"),
        {"GET": "get", "PUT": "replace", "PATCH": "patch"},
        "/api/v1/{collection}/{external_id}",
    ),
    (
        re.compile(rf"/api/v1/{_COLLECTION}/{_EXTERNAL_ID}/cancel"),
        {"POST": "cancel"},
        "/api/v1/{collection}/{external_id}/cancel",
    ),
]
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": 'Basic realm="reference-erp"'}


class ApiError(Exception):
    def __init__(self, status: int, body: dict, headers: dict[str, str] | None = None) -> None:
        super().__init__(status, body)
        self.status, self.body, self.headers = status, body, headers or {}


def _route(method: str, path: str) -> tuple[str | None, dict[str, str], str, list[str]]:
    """(handler name or None, path parameters, stats label, methods the path allows)."""
    allowed: list[str] = []
    for pattern, methods, template in ROUTES:
        m = pattern.fullmatch(path)
        if m is None:
            continue
        if method in methods:
            params = {k: unquote(v) for k, v in m.groupdict().items()}
            return methods[method], params, f"{method} {template}", []
        allowed.extend(methods)
    return None, {}, "unmatched", sorted(set(allowed))


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests, self.replayed, self.lost_answers = 0, 0, 0
        self.by_status: dict[str, int] = {}
        self.by_route: dict[str, int] = {}

    def arrived(self, route: str) -> None:
        with self.lock:
            self.requests += 1
            self.by_route[route] = self.by_route.get(route, 0) + 1

    def answered(self, status: int) -> None:
        with self.lock:
            self.by_status[str(status)] = self.by_status.get(str(status), 0) + 1

    def replay(self) -> None:
        with self.lock:
            self.replayed += 1

    def lost(self) -> None:
        with self.lock:
            self.lost_answers += 1

    def view(self) -> dict:
        with self.lock:
            return {
                "requests": self.requests,
                "by_status": dict(self.by_status),
                "by_route": dict(self.by_route),
                "replayed": self.replayed,
                "lost_answers": self.lost_answers,
            }


class ReferenceErp:
    """A reference ERP REST API behind an HTTP server; usable in-process (tests) or from the CLI.

    Stats count `/api/` requests only: `requests` when they arrive (401s included), `by_status`
    when answered, `lost_answers` for the answers a fault withheld (so requests == the sum of
    by_status + lost_answers once all are answered), `replayed` for idempotent replays.
    """

    def __init__(
        self,
        db_path: str | Path | None = None,
        username: str = "erp",
        password: str = "erp-secret",
        faults: dict | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._faults = Faults(faults)  # a bad profile fails here, not on the first request
        self.username, self._password = username, password
        self.db_path = Path(db_path) if db_path is not None else None
        self.host, self.port = host, port
        self._stats = Stats()
        self._tmpdir: Path | None = None
        self.store: Store | None = None
        self.httpd: ThreadingHTTPServer | None = None

    def __repr__(self) -> str:
        return f"ReferenceErp(url={self.url!r}, username={self.username!r}, db_path={str(self.db_path)!r})"

    # ---------- lifecycle ----------
    def start(self) -> ReferenceErp:
        if self.db_path is None:
            self._tmpdir = Path(tempfile.mkdtemp(prefix="reference-erp-"))
            path = self._tmpdir / "erp.sqlite3"
        else:
            path = self.db_path
            path.parent.mkdir(parents=True, exist_ok=True)
        self.store = Store(path)
        handler = type("Handler", (Handler,), {"erp": self})
        self.httpd = Server((self.host, self.port), handler)
        self.port = self.httpd.server_address[1]
        # A short poll interval: stop() waits for the loop to notice, per test in a test suite.
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="reference-erp", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        if self.httpd is not None:
            # shutdown() waits for the serve loop to notice, at its next poll; a connection wakes it
            # now (a handler thread then reads an empty request and ends).
            stopper = threading.Thread(target=self.httpd.shutdown, daemon=True)
            stopper.start()
            wake = ("127.0.0.1" if self.host in ("", "0.0.0.0") else self.host, self.port)
            while stopper.is_alive():
                with contextlib.suppress(OSError):
                    socket.create_connection(wake, timeout=0.2).close()
                stopper.join(0.01)
            self.httpd.server_close()
            self.httpd = None
        if self.store is not None:
            self.store.close()
            self.store = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    def __enter__(self) -> ReferenceErp:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # ---------- controls shared by the admin routes and in-process callers ----------
    @property
    def faults(self) -> dict:
        """The fault profile in force (a copy)."""
        return json.loads(json.dumps(self._faults.profile))

    def set_faults(self, profile: dict | None) -> None:
        """Replace the fault profile (ValueError if invalid); its counters start from zero."""
        self._faults = Faults(profile)

    @property
    def stats(self) -> dict:
        return self._stats.view()

    def reset(self) -> None:
        """Forget documents, versions, idempotency keys and stats; the fault counters start afresh."""
        self._require_store().reset()
        self._stats.reset()
        self._faults.reset()

    def documents(self, collection: str) -> list[dict]:
        return self._require_store().documents(collection)

    def document(self, collection: str, external_id: str) -> dict | None:
        return self._require_store().get(collection, external_id)

    def history(self, collection: str, external_id: str) -> list[dict]:
        """Every version written, oldest first: {"version", "op", "document", "at"} (+ "reason" for a cancel)."""
        return self._require_store().history(collection, external_id)

    def _require_store(self) -> Store:
        if self.store is None:
            raise RuntimeError("the reference ERP is not started")
        return self.store

    def authorized(self, header: str | None) -> bool:
        if not header or header[:6].lower() != "basic ":
            return False
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return False
        user, sep, password = decoded.partition(":")
        user_ok = hmac.compare_digest(user.encode(), self.username.encode())
        password_ok = hmac.compare_digest(password.encode(), self._password.encode())
        return bool(sep) and user_ok and password_ok


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ReferenceERP/1.0"
    # Headers and body leave in one write, without Nagle's delay (see the Zuora emulator).
    wbufsize = 1 << 16
    erp: ReferenceErp

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: object) -> None:
        # The request line and status only: headers (Authorization) are never logged.
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """What http.server answers itself (a bad request line, an unsupported method such as HEAD)
        is JSON with a Request-Id too."""
        self.close_connection = True
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self._json(code, {"error": message or phrase}, {"Request-Id": str(uuid.uuid4()), "Connection": "close"})

    # ---------- plumbing ----------
    def _json(self, status: int, payload: object, headers: dict[str, str]) -> None:
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _dispatch(self, method: str) -> None:
        headers = {"Request-Id": str(uuid.uuid4())}
        try:
            # Read the whole body before anything answers (a 401, a fault): left unread on a
            # keep-alive socket it would be parsed as the next request.
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
                self._json(411, {"error": "Content-Length required (no chunked bodies)"}, headers)
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY_BYTES:
                self.close_connection = True
                self._json(413 if length > 0 else 400, {"error": "bad Content-Length"}, headers)
                return
            raw = self.rfile.read(length) if length else b""
            path = urlsplit(self.path).path.rstrip("/") or "/"
            if path == "/_admin" or path.startswith("/_admin/"):
                self._admin(method, path, raw, headers)
            elif path.startswith("/api/"):
                self._api(method, path, raw, headers)
            else:
                self._json(404, {"error": f"no route for {method} {path}"}, headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    @staticmethod
    def _parse(raw: bytes) -> Any:
        """The JSON body (None when empty); ApiError 400 when it is not JSON."""
        if not raw.strip():
            return None
        try:
            return json.loads(raw, parse_constant=_no_constants)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, {"error": f"malformed JSON body: {exc}"}) from None

    def _api(self, method: str, path: str, raw: bytes, headers: dict[str, str]) -> None:
        erp = self.erp
        faults = erp._faults  # one profile for the whole request, even if replaced meanwhile
        name, params, label, allowed = _route(method, path)
        erp._stats.arrived(label)
        lost = False
        extra: dict[str, str] = {}
        try:
            try:
                if not erp.authorized(self.headers.get("Authorization")):
                    raise ApiError(401, {"error": "unauthorized"}, UNAUTHORIZED_HEADERS)
                injected = faults.on_request()
                if injected is not None:
                    raise ApiError(injected.status, injected.body, injected.headers)
                if name is None:
                    if allowed:
                        raise ApiError(405, {"error": f"{method} not allowed on {path}"}, {"Allow": ", ".join(allowed)})
                    raise ApiError(404, {"error": f"no route for {method} {path}"})
                if method == "GET":
                    status, body = getattr(self, f"_{name}")(**params)
                else:
                    status, body, extra = self._write(name, method, path, params, raw)
                    lost = faults.lose_answer()
            except ApiError as exc:
                status, body, extra = exc.status, exc.body, exc.headers
        except Exception as exc:  # a bug here must be a 500 (never stored under a key), and logged
            log.exception("reference ERP error on %s %s", method, path)
            status, body, extra = 500, {"error": f"internal error: {type(exc).__name__}"}, {}
        if faults.latency_s:
            time.sleep(faults.latency_s)
        if lost:
            # Committed (and stored under its key), but the client never hears of it.
            erp._stats.lost()
            self.close_connection = True
            return
        erp._stats.answered(status)
        self._json(status, body, {**headers, **extra})

    def _write(self, name: str, method: str, path: str, params: dict[str, str],
               raw: bytes) -> tuple[int, dict, dict[str, str]]:  # fmt: skip
        """A POST/PUT/PATCH under its Idempotency-Key: replayed, refused, or processed and stored,
        in one transaction."""
        erp = self.erp
        store = erp._require_store()
        key = self.headers.get("Idempotency-Key")
        if key is not None and not 1 <= len(key) <= MAX_KEY_CHARS:
            raise ApiError(400, {"error": f"Idempotency-Key must be 1 to {MAX_KEY_CHARS} characters"})
        try:
            parsed, parse_error = self._parse(raw), None
            canonical = _canonical(parsed)
        except ApiError as exc:
            parsed, parse_error, canonical = None, exc, raw
        fingerprint = hashlib.sha256(f"{method} {path}\n".encode() + canonical).hexdigest()
        with store.transaction():
            if key is not None:
                prior = store.recall(key)
                if prior is not None:
                    if prior[0] != fingerprint:
                        return 422, {"error": "Idempotency-Key reused for a different request"}, {}
                    erp._stats.replay()
                    return prior[1], prior[2], {"Idempotent-Replayed": "true"}
            try:
                if parse_error is not None:
                    raise parse_error
                status, body = getattr(self, f"_{name}")(body=parsed, **params)
            except ApiError as exc:
                status, body = exc.status, exc.body
            if key is not None and _carried_out(status, body):
                store.remember(key, fingerprint, status, body)
        return status, body, {}

    # ---------- document routes ----------
    @staticmethod
    def _object(body: Any, what: str = "the body") -> dict:
        if not isinstance(body, dict):
            raise ApiError(400, {"error": f"{what} must be a JSON object"})
        return body

    @staticmethod
    def _external_id(document: dict) -> str:
        external_id = external_id_of(document)
        if external_id is None or external_id == "":
            raise ApiError(422, {"error": "external_id is required", "field": "external_id"})
        if not isinstance(external_id, str):
            raise ApiError(422, {"error": "external_id must be a string", "field": "external_id"})
        return external_id

    def _check_reject(self, external_id: str) -> None:
        reason = self.erp._faults.rejection(external_id)
        if reason is not None:
            raise ApiError(422, {"error": reason, "external_id": external_id})

    @staticmethod
    def _check_same_id(document: dict, external_id: str) -> None:
        named = external_id_of(document)
        if named is not None and named != external_id:
            raise ApiError(
                422,
                {"error": f"external_id {named!r} does not match the path ({external_id})", "field": "external_id"},
            )

    @staticmethod
    def _not_found(collection: str, external_id: str) -> ApiError:
        return ApiError(404, {"error": f"{collection} {external_id} not found"})

    def _list(self, collection: str) -> tuple[int, dict]:
        return 200, {"data": self.erp._require_store().documents(collection)}

    def _get(self, collection: str, external_id: str) -> tuple[int, dict]:
        document = self.erp._require_store().get(collection, external_id)
        if document is None:
            raise self._not_found(collection, external_id)
        return 200, document

    def _create(self, collection: str, body: Any) -> tuple[int, dict]:
        document = self._object(body)
        external_id = self._external_id(document)
        self._check_reject(external_id)
        try:
            view = self.erp._require_store().create(collection, external_id, document)
        except Exists as exc:
            raise ApiError(409, {"error": f"{collection} {external_id} already exists", "id": exc.erp_id}) from None
        return 201, {"id": view["id"], "external_id": external_id, "version": view["version"]}

    def _batch(self, collection: str, body: Any) -> tuple[int, dict]:
        documents = body.get("documents") if isinstance(body, dict) else None
        if not isinstance(documents, list) or not 1 <= len(documents) <= MAX_BATCH:
            raise ApiError(400, {"error": f'the body must be {{"documents": [...]}} with 1 to {MAX_BATCH} documents'})
        results = []
        for document in documents:
            try:
                status, answer = self._create(collection, document)
                results.append({"status": status, **answer})
            except ApiError as exc:
                named = external_id_of(document) if isinstance(document, dict) else None
                result = {
                    "status": 422 if exc.status == 400 else exc.status,
                    "error": exc.body["error"].replace("the body", "a document"),
                    "external_id": named if isinstance(named, str) else None,
                }
                if "id" in exc.body:
                    result["id"] = exc.body["id"]
                results.append(result)
        return 200, {"results": results}

    def _replace(self, collection: str, external_id: str, body: Any) -> tuple[int, dict]:
        document = self._object(body)
        self._check_reject(external_id)
        self._check_same_id(document, external_id)
        try:
            view = self.erp._require_store().update(collection, external_id, document, "replace")
        except NotFound:
            raise self._not_found(collection, external_id) from None
        return 200, {"id": view["id"], "external_id": external_id, "version": view["version"]}

    def _patch(self, collection: str, external_id: str, body: Any) -> tuple[int, dict]:
        patch = self._object(body)
        self._check_reject(external_id)
        store = self.erp._require_store()
        current = store.get(collection, external_id)
        if current is None:
            raise self._not_found(collection, external_id)
        document = merge(current["document"], patch)
        self._check_same_id(document, external_id)
        view = store.update(collection, external_id, document, "patch")
        return 200, {"id": view["id"], "external_id": external_id, "version": view["version"]}

    def _cancel(self, collection: str, external_id: str, body: Any) -> tuple[int, dict]:
        reason = None
        if body is not None:
            reason = self._object(body).get("reason")
            if reason is not None and not isinstance(reason, str):
                raise ApiError(400, {"error": "reason must be a string"})
        try:
            view = self.erp._require_store().cancel(collection, external_id, reason)
        except NotFound:
            raise self._not_found(collection, external_id) from None
        return 200, {"id": view["id"], "external_id": external_id, "version": view["version"], "status": "canceled"}

    # ---------- admin ----------
    def _admin(self, method: str, path: str, raw: bytes, headers: dict[str, str]) -> None:
        erp = self.erp
        try:
            if not erp.authorized(self.headers.get("Authorization")):
                raise ApiError(401, {"error": "unauthorized"}, UNAUTHORIZED_HEADERS)
            routes = {
                "/_admin/faults": ("GET", "PUT"),
                "/_admin/stats": ("GET",),
                "/_admin/reset": ("POST",),
            }
            if path not in routes:
                raise ApiError(404, {"error": f"no admin route for {method} {path}"})
            if method not in routes[path]:
                raise ApiError(405, {"error": f"{method} not allowed on {path}"}, {"Allow": ", ".join(routes[path])})
            if path == "/_admin/faults":
                if method == "PUT":
                    try:
                        erp.set_faults(self._parse(raw))
                    except ValueError as exc:
                        raise ApiError(400, {"error": f"invalid fault profile: {exc}"}) from None
                self._json(200, erp.faults, headers)
            elif path == "/_admin/stats":
                self._json(200, erp.stats, headers)
            else:
                erp.reset()
                self._json(200, {"reset": True}, headers)
        except ApiError as exc:
            self._json(exc.status, exc.body, {**headers, **exc.headers})


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for starting a server process (tests, demos)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _carried_out(status: int, body: Any) -> bool:
    """Whether an answer records a request carried out in full (stored under its key): a 2xx, and
    for a batch, every document's result a 2xx."""
    if not 200 <= status < 300:
        return False
    results = body.get("results") if isinstance(body, dict) else None
    return not isinstance(results, list) or all(200 <= int(r.get("status", 0)) < 300 for r in results)
