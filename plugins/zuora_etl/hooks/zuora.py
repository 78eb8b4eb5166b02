"""ZuoraHook: the one place that talks to Zuora's REST API.

It owns the `zuora_default` connection (type `zuora` or `http`, same fields: host = REST base
URL, login = client id, password = client secret; extra: entity_id, zuora_version, page_size,
max_attempts, backoff_seconds, max_in_flight (Object Query calls the task process sends at once, see
concurrency.py), timezone (the tenant's zone: the sync does not need it, since
Zuora's datetimes carry their offset; sizing uses it to tell when a month is over); a `zuora`
connection made in the UI may leave host empty and pick extra `data_center` instead, see
provider.py), the OAuth token cache, retries and paging, and Data
Query jobs (submit, wait, download the result). Operators stay thin and call it.

It is an `HttpHook` (apache-airflow-providers-http): the session is built from the connection the
way the HTTP provider builds it, so extra `proxies`, `verify`, `cert`, `trust_env`, `stream`,
`max_redirects`, `timeout` and `allow_redirects` work as for any `http` connection, and any other
extra key is sent as an HTTP header, except Zuora's own keys above. The client id and secret are
never sent as HTTP Basic auth: they go only to `/oauth/token`, as form fields.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

import requests
from airflow.exceptions import AirflowException
from airflow.providers.http.hooks.http import HttpHook
from requests.auth import AuthBase
from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from ..provider import DATA_CENTERS
from ..settings import MAX_IN_FLIGHT_PER_PROCESS, ZUORA_CONN_ID
from .concurrency import ConcurrencyGate, gate_for

# Refresh a token this long before Zuora says it expires: a request that starts with a token about
# to lapse would otherwise fail mid-flight. Zuora tokens live 3599 s.
TOKEN_REFRESH_MARGIN_S = 120
# Zuora's gateway ends any request at 120 s; a little more lets its own timeout answer arrive.
READ_TIMEOUT_S = 130
CONNECT_TIMEOUT_S = 10
# 8 attempts with backoff capped at 60 s ride out a minute-long rate-limit window and short outages.
DEFAULT_MAX_ATTEMPTS = 8
DEFAULT_BACKOFF_S = 1.0
MAX_BACKOFF_S = 60.0
# Zuora error codes end in two class digits; these classes are transient (lock contention,
# internal, temporary, limit exceeded, external) and worth a retry.
RETRYABLE_CODE_CLASSES = {50, 60, 61, 70, 99}
MAX_PAGE_SIZE = 99  # Object Query refuses anything above
ACTION_BATCH = 50  # POST /v1/action/update takes at most 50 objects per call
# Keep-alive pool: a task's parallel slices each hold a hook, but one hook may serve a few threads
# (a pool per host, up to 16 sockets kept open) without opening a new TLS connection per call.
POOL_CONNECTIONS = 4
POOL_MAXSIZE = 16
# TCP keep-alive probes, HttpHook's own defaults: an idle pooled socket that a NAT or load balancer
# dropped is noticed instead of hanging a call.
TCP_KEEP_ALIVE = {"idle": 120, "count": 20, "interval": 30}
# Data Query: the first poll comes this soon (a count often finishes in well under a second), then the
# interval doubles up to the caller's poll_s, so an hour-long job is not polled twice a second.
QUERY_FIRST_POLL_S = 0.1
# Data Query's terminal states (ZUORA_API.md "Data Query"); any other status means still running.
QUERY_DONE = frozenset({"completed", "failed", "cancelled"})
# Chunks in which a Data Query result file is streamed: a full-field export can be hundreds of MB,
# counted chunk by chunk for sizing instead of held whole.
DOWNLOAD_CHUNK_BYTES = 1 << 20
# The connection extra keys that are Zuora settings, not HTTP headers (HttpHook sends every extra key
# it does not know as a header).
ZUORA_EXTRA_KEYS = frozenset(
    {
        "entity_id",
        "zuora_version",
        "page_size",
        "max_attempts",
        "backoff_seconds",
        "timezone",
        "data_center",
        "max_in_flight",
    }
)


class LastCall(NamedTuple):
    """The hook's last API call, for the page and batch log lines: Zuora's support finds a call by
    its request id, and our own logs by the track id we sent."""

    request_id: str | None
    track_id: str | None
    ms: int | None


class ZuoraApiError(AirflowException):
    """An error answer from Zuora (or no answer at all), with what decides whether to retry.

    `retryable`: the same request may succeed if sent again (rate limits, 5xx, dropped connections).
    `fatal`: no retry of the task can fix it either (bad credentials, an invalid field or filter):
    operators turn it into `AirflowFailException` so the run fails at once.
    """

    def __init__(
        self,
        message: str,
        status: int | None = None,
        code: int | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        transient: bool | None = None,
        misconfigured: bool = False,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.request_id, self.retry_after = status, code, request_id, retry_after
        self.transient = transient
        self.misconfigured = misconfigured  # the connection itself is wrong: nothing was sent

    @property
    def retryable(self) -> bool:
        if self.transient is not None:
            return self.transient
        if self.status is None:  # connection dropped, timeout
            return True
        if self.status == 429 or self.status >= 500:
            return True
        return self.code is not None and self.code % 100 in RETRYABLE_CODE_CLASSES

    @property
    def fatal(self) -> bool:
        """A refusal of the request itself (4xx other than 429), or a connection that cannot be
        used as configured: retrying cannot change either."""
        if self.misconfigured:
            return True
        return not self.retryable and self.status is not None and 400 <= self.status < 500


class ZuoraDataError(ZuoraApiError):
    """An answer that cannot be trusted as data (a repeated cursor, a record without id or
    updatedDate, an answer without `data`): never taken as the end of the data. Not retried within
    the task (the paging would resume from a bad cursor); the task's own retry reads it again."""

    def __init__(self, message: str, request_id: str | None = None) -> None:
        super().__init__(message, request_id=request_id, transient=False)


class DataQueryError(ZuoraApiError):
    """A Data Query job that ended without a result: `failed` (the SQL or the table is wrong: no retry
    can fix it, so `fatal`), `cancelled`, or not done within the caller's timeout (both retryable
    by a later task try, when the tenant is less busy)."""

    def __init__(self, message: str, job_id: str, query_status: str) -> None:
        super().__init__(message, transient=query_status != "failed")
        self.job_id, self.query_status = job_id, query_status

    @property
    def fatal(self) -> bool:
        return self.query_status == "failed"


def _wait(base: float):
    exponential = wait_exponential_jitter(initial=base, max=MAX_BACKOFF_S, jitter=base)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ZuoraApiError) and exc.retry_after is not None:
            return min(exc.retry_after, MAX_BACKOFF_S) + 0.1 * base  # Zuora said when; add a hair
        return exponential(state)

    return wait


class _NoBasicAuth(AuthBase):
    """Takes the place of the Basic auth HttpHook builds from login/password: Zuora's client id and
    secret go only to `/oauth/token` as form fields. Being set, it also keeps requests from reading
    credentials for the host out of a `~/.netrc` (trust_env)."""

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        return r


class _Bearer(AuthBase):
    """The OAuth token on one API call (request-level auth wins over the session's)."""

    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, r: requests.PreparedRequest) -> requests.PreparedRequest:
        r.headers["Authorization"] = f"Bearer {self.token}"
        return r


class ZuoraHook(HttpHook):
    """Zuora's REST API through one Airflow connection (type `zuora`, or `http` with the same fields).

    The `zuora` connection type and its form are declared in `zuora_etl.provider` (Airflow 3.3 reads
    forms from provider info); `test_connection` backs the form's Test button by fetching a token.

    Why an `HttpHook`: the session then takes proxies, TLS (verify, cert), trust_env, redirects, a
    timeout and extra headers from the connection exactly as the HTTP provider does, with its TCP
    keep-alive adapter. What is overridden, and why:

    - `get_conn`: one pooled session per hook, built once by `HttpHook.get_conn` (with headers or
      extra_options it builds a new one, as HttpHook does); adds `Accept`, `Zuora-Entity-Ids` and
      `Zuora-Version`.
    - `_set_base_url`: host may carry the scheme, or take it from the schema field (default `https`,
      not HttpHook's `http`: Zuora is TLS only), plus a port; an empty host falls back to the extra
      `data_center` (one of Zuora's URLs only). SRV lookup is not supported.
    - `_configure_session_from_auth`: no Basic auth; login/password are kept for the token request.
    - `_configure_session_from_extra`: reads Zuora's extra keys and keeps them out of the headers.
    - `run_and_check`: adds the bearer token, so HttpHook's `run()` works too (without `request`'s
      retries, refresh and error mapping: use `request`).
    - `test_connection`: fetches a token instead of sending a bare request.
    """

    conn_name_attr = "zuora_conn_id"
    default_conn_name = ZUORA_CONN_ID
    conn_type = "zuora"  # the provider's type; `http` connections with the same fields work alike
    hook_name = "Zuora"

    def __init__(self, zuora_conn_id: str = default_conn_name, track_prefix: str = "zuora-etl") -> None:
        super().__init__(method="GET", http_conn_id=zuora_conn_id)
        # HttpHook's keep-alive adapter, with a pool sized for a few threads sharing the hook.
        self.keep_alive_adapter = TCPKeepAliveAdapter(
            **TCP_KEEP_ALIVE, pool_connections=POOL_CONNECTIONS, pool_maxsize=POOL_MAXSIZE
        )
        self.zuora_conn_id = zuora_conn_id
        self.track_prefix = track_prefix[:40]
        self._session: requests.Session | None = None
        self._session_lock = threading.Lock()
        self._session_extra: dict[str, Any] = {}
        self.client_id: str | None = None
        self._client_secret: str | None = None
        self.page_size = MAX_PAGE_SIZE
        self.max_attempts = DEFAULT_MAX_ATTEMPTS
        self.backoff_s = DEFAULT_BACKOFF_S
        self.max_in_flight = MAX_IN_FLIGHT_PER_PROCESS
        self._zuora_headers: dict[str, str] = {}
        self._token: str | None = None
        self._token_expiry = 0.0
        self._token_lock = threading.Lock()
        self._seq = itertools.count(1)
        self._run_tag = uuid.uuid4().hex[:8]
        self.api_calls = 0  # calls to Zuora's API (token calls excluded), retries included
        self._calls_lock = threading.Lock()  # threads may share the hook: api_calls counts every call
        self.token_calls = 0
        self.last_headers: Any = {}  # the last answer's headers, any thread's (RateLimit-*, Concurrency-Limit-*)
        self._local = threading.local()  # each thread's last call, for its own page log lines

    @property
    def last_call(self) -> LastCall:
        """This thread's last API call (threads reading chunks share the hook, each logs its own)."""
        return getattr(self._local, "last_call", LastCall(None, None, None))

    def _count_call(self) -> None:
        with self._calls_lock:
            self.api_calls += 1

    # ---------- connection ----------
    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """The hook's pooled session (built on first use); with headers or extra_options, a new
        session as `HttpHook.get_conn` makes one (what `HttpHook.run` asks for)."""
        if headers or extra_options:
            return self._new_session(headers, extra_options)
        with self._session_lock:
            if self._session is None:
                self._session = self._new_session()
                self._session_extra = dict(self.merged_extra)  # HttpHook's split of the extra, for _send_options
            return self._session

    def _new_session(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        session = super().get_conn(headers, extra_options)
        session.headers["Accept"] = "application/json"
        session.headers.update(self._zuora_headers)
        return session

    def _set_base_url(self, connection: Any) -> None:
        host = _base_url(self.zuora_conn_id, connection.host, connection.extra_dejson.get("data_center"))
        if not host.startswith(("http://", "https://")):
            schema = (connection.schema or "").lower()
            host = f"{schema if schema in ('http', 'https') else 'https'}://{host}"
        parts = urlsplit(host)
        if connection.port and parts.port is None:
            host = urlunsplit(parts._replace(netloc=f"{parts.netloc}:{connection.port}"))
        self.base_url = host
        self._srv_lookup_enabled = False
        self._base_url_initialized = True

    def _configure_session_from_auth(self, session: requests.Session, connection: Any) -> requests.Session:
        self.client_id, self._client_secret = connection.login, connection.password
        session.auth = _NoBasicAuth()
        return session

    def _configure_session_from_extra(
        self, session: requests.Session, connection: Any, extra_options: dict[str, Any]
    ) -> requests.Session:
        session = super()._configure_session_from_extra(session, connection, extra_options)
        for key in ZUORA_EXTRA_KEYS:
            session.headers.pop(key, None)
        extra = connection.extra_dejson
        self.page_size = min(int(extra.get("page_size") or MAX_PAGE_SIZE), MAX_PAGE_SIZE)
        self.max_attempts = int(extra.get("max_attempts") or DEFAULT_MAX_ATTEMPTS)
        self.backoff_s = float(extra.get("backoff_seconds") or DEFAULT_BACKOFF_S)
        self.max_in_flight = max(1, int(extra.get("max_in_flight") or MAX_IN_FLIGHT_PER_PROCESS))
        self._zuora_headers = {}
        if extra.get("entity_id"):
            self._zuora_headers["Zuora-Entity-Ids"] = str(extra["entity_id"])
        if extra.get("zuora_version"):
            self._zuora_headers["Zuora-Version"] = str(extra["zuora_version"])
        return session

    @property
    def gate(self) -> ConcurrencyGate:
        """The process's Object Query gate for this connection's Zuora (shared by every hook of the
        task, so threads with a hook each still count together)."""
        self.get_conn()
        return gate_for(self.base_url, self.max_in_flight)

    def _send_options(self, session: requests.Session) -> dict[str, Any]:
        """What `HttpHook.run_and_check` passes with each request: the session's proxies, TLS and
        stream settings given explicitly (so environment proxies or CA bundles do not override what
        the connection says), its timeout (else Zuora's) and redirects."""
        return {
            "proxies": dict(session.proxies),  # a copy: requests adds environment proxies to it
            "verify": session.verify,
            "cert": session.cert,
            "stream": session.stream,
            "timeout": _timeout(self._session_extra.get("timeout")),
            "allow_redirects": self._session_extra.get("allow_redirects", True),
        }

    def run_and_check(self, session: requests.Session, prepped_request: Any, extra_options: dict[Any, Any]) -> Any:
        prepped_request.headers["Authorization"] = f"Bearer {self._bearer()}"
        return super().run_and_check(session, prepped_request, extra_options)

    def test_connection(self) -> tuple[bool, str]:
        """(True, where a token came from) or (False, why not): the Airflow UI's Test button.
        The message never carries the client secret, even if an underlying error quoted it."""
        try:
            self._bearer(force=True)
            return True, f"Token obtained from {self.base_url}"
        except Exception as exc:  # shown in the Airflow UI's connection test
            message = str(exc) or type(exc).__name__
            secret = getattr(self, "_client_secret", None)
            return False, message.replace(secret, "***") if secret else message

    def _bearer(self, force: bool = False) -> str:
        """The cached token, fetched anew when missing, near expiry, or refused."""
        session = self.get_conn()
        with self._token_lock:
            if force or self._token is None or time.time() > self._token_expiry - TOKEN_REFRESH_MARGIN_S:
                self.token_calls += 1
                options = self._send_options(session)
                try:
                    r = session.post(
                        f"{self.base_url}/oauth/token",
                        data={
                            "client_id": self.client_id,
                            "client_secret": self._client_secret,
                            "grant_type": "client_credentials",
                        },
                        **options,
                    )
                except requests.RequestException as exc:
                    raise ZuoraApiError(
                        f"token request to {_no_answer(self.base_url, exc, options['timeout'])}"
                    ) from exc
                if r.status_code != 200:
                    raise ZuoraApiError(
                        f"token request refused with HTTP {r.status_code}: check the client id and secret "
                        f"of connection {self.zuora_conn_id!r}",
                        status=r.status_code,
                        retry_after=_retry_after(r),
                        transient=r.status_code == 429 or r.status_code >= 500,  # bad credentials stay bad
                    )
                body = r.json()
                self._token = body["access_token"]
                self._token_expiry = time.time() + float(body.get("expires_in", 3599))
            return self._token

    # ---------- requests ----------
    def request(self, method: str, path: str, *, params: Any = None, json: Any = None) -> Any:
        """One API call with retries; returns the decoded JSON answer."""
        self.get_conn()
        return self._retrying()(self._send, method, path, params, json)

    def _retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, ZuoraApiError) and e.retryable),
            wait=_wait(self.backoff_s),
            stop=stop_after_attempt(self.max_attempts),
            before_sleep=self._log_retry,
            reraise=True,
        )

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        self.log.warning(
            "Zuora call failed (attempt %d/%d), retrying in %.1fs: %s",
            state.attempt_number,
            self.max_attempts,
            state.next_action.sleep if state.next_action else 0,
            exc,
        )

    def _send(self, method: str, path: str, params: Any, json: Any) -> Any:
        session = self.get_conn()
        options = self._send_options(session)
        for refreshed in (False, True):
            token = self._bearer(force=refreshed)
            track = f"{self.track_prefix}-{self._run_tag}-{next(self._seq)}"[:64]
            self._count_call()
            # Zuora limits Object Query requests in flight; other calls (tokens, actions, Data Query) pass.
            gate = self.gate if path.startswith("/object-query/") else None
            with gate.slot() if gate else contextlib.nullcontext():
                started = time.monotonic()
                try:
                    r = session.request(
                        method,
                        f"{self.base_url}{path}",
                        params=params,
                        json=json,
                        headers={"Zuora-Track-Id": track},
                        auth=_Bearer(token),
                        **options,
                    )
                except requests.RequestException as exc:
                    where = _no_answer(self.base_url, exc, options["timeout"])
                    raise ZuoraApiError(f"{method} {path} to {where}") from exc
            if gate:
                gate.observe(r.headers)  # few requests left at Zuora: the next calls pause first
            request_id = r.headers.get("Zuora-Request-Id")
            self.last_headers = r.headers
            self._local.last_call = LastCall(request_id, track, round((time.monotonic() - started) * 1000))
            self.log.debug(
                "%s %s -> %s in %.0f ms (request %s, track %s)",
                method,
                path,
                r.status_code,
                (time.monotonic() - started) * 1000,
                request_id,
                track,
            )
            if r.status_code == 401 and not refreshed:
                continue  # token expired or revoked early: refresh once and retry at once
            if r.status_code >= 400:
                error = _error(method, path, r, request_id)
                if r.status_code == 401:
                    error.transient = True  # refused right after a fresh token: back off, then try again
                raise error
            try:
                return r.json()
            except ValueError as exc:
                raise ZuoraApiError(
                    f"{method} {path}: answer is not JSON (HTTP {r.status_code})", status=502, request_id=request_id
                ) from exc
        raise AssertionError("unreachable")

    # ---------- Object Query ----------
    def paginate(
        self, endpoint: str, params: list[tuple[str, str]], require: tuple[str, ...] = ("id",)
    ) -> Iterator[list[dict]]:
        """Pages of `GET /object-query/{endpoint}`, following `nextPage` until Zuora omits it.
        Without a `pageSize` in `params`, the connection's (default 99) is used.

        Anomalies raise `ZuoraDataError`, never end the data quietly: an answer without a `data`
        list, a record lacking one of the `require`d fields, a cursor Zuora already gave."""
        self.get_conn()
        if not any(k == "pageSize" for k, _ in params):
            params = [("pageSize", str(self.page_size)), *params]  # the connection's, at most 99
        seen: set[str] = set()
        cursor: str | None = None
        while True:
            page_params = list(params) + ([("cursor", cursor)] if cursor else [])
            body = self.request("GET", f"/object-query/{endpoint}", params=page_params)
            data = body.get("data") if isinstance(body, dict) else None
            request_id = self.last_call.request_id
            if not isinstance(data, list):
                raise ZuoraDataError(f"GET /object-query/{endpoint}: answer has no data list", request_id)
            for rec in data:
                missing = [f for f in require if not (isinstance(rec, dict) and rec.get(f))]
                if missing:
                    raise ZuoraDataError(
                        f"GET /object-query/{endpoint}: a record without {', '.join(missing)} "
                        f"(id {rec.get('id') if isinstance(rec, dict) else rec!r})",
                        request_id,
                    )
            yield data
            cursor = body.get("nextPage")
            if not cursor:
                return
            if cursor in seen:
                raise ZuoraDataError(
                    f"GET /object-query/{endpoint}: Zuora repeated a cursor after {len(seen) + 1} pages; "
                    "the rest of the data cannot be read safely",
                    request_id,
                )
            seen.add(cursor)

    def get_record(self, endpoint: str, key: str, fields: list[str] | None = None) -> dict | None:
        params = [("fields[]", ",".join(fields))] if fields else None
        try:
            return self.request("GET", f"/object-query/{endpoint}/{key}", params=params)
        except ZuoraApiError as exc:
            if exc.status == 404:
                return None
            raise

    # ---------- marking documents ----------
    def action_update(self, zuora_type: str, objects: list[dict]) -> list[dict]:
        """`POST /v1/action/update` in batches of 50; per-object results in input order."""
        results: list[dict] = []
        for start in range(0, len(objects), ACTION_BATCH):
            batch = objects[start : start + ACTION_BATCH]
            answer = self.request("POST", "/v1/action/update", json={"type": zuora_type, "objects": batch})
            if not isinstance(answer, list) or len(answer) != len(batch):
                raise ZuoraApiError(f"action/update answered {len(answer)} results for {len(batch)} objects")
            results.extend(answer)
        return results

    def update_memo(self, memo_path: str, key: str, fields: dict) -> dict:
        """`PUT /v1/{credit-memos|debit-memos}/{key}`; an HTTP 200 with `success: false` is a refusal."""
        answer = self.request("PUT", f"/v1/{memo_path}/{key}", json=fields)
        if not isinstance(answer, dict) or answer.get("success") is False:
            reasons = (answer.get("reasons") if isinstance(answer, dict) else None) or [{}]
            raise ZuoraApiError(
                f"PUT /v1/{memo_path}/{key} refused: code {reasons[0].get('code')}: {reasons[0].get('message')}",
                status=200,
                code=reasons[0].get("code"),
                transient=False,
            )
        return answer

    # ---------- Data Query ----------
    def submit_query(self, sql: str) -> str:
        """`POST /query/jobs` (CSV, uncompressed): the job's id. The SQL is Trino's dialect."""
        answer = self.request("POST", "/query/jobs", json={"query": sql, "outputFormat": "CSV", "compression": "NONE"})
        job = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(job, dict) or not job.get("id"):
            raise ZuoraApiError("POST /query/jobs: the answer has no job id", status=502)
        return str(job["id"])

    def query_job(self, job_id: str) -> dict[str, Any]:
        """`GET /query/jobs/{id}`: the job as Zuora shows it (`queryStatus`, `dataFile`, `errorMessage`...)."""
        answer = self.request("GET", f"/query/jobs/{job_id}")
        job = answer.get("data") if isinstance(answer, dict) else None
        if not isinstance(job, dict) or "queryStatus" not in job:
            raise ZuoraApiError(f"GET /query/jobs/{job_id}: the answer has no queryStatus", status=502)
        return job

    def wait_for_query(self, job_id: str, timeout_s: float, poll_s: float) -> dict[str, Any]:
        """Poll until the job completes (its view, with `dataFile`); `DataQueryError` when it failed,
        was cancelled, or is still running after `timeout_s`. Polls start at QUERY_FIRST_POLL_S and
        double up to `poll_s`."""
        deadline = time.monotonic() + timeout_s
        delay = min(QUERY_FIRST_POLL_S, poll_s)
        while True:
            job = self.query_job(job_id)
            status = str(job["queryStatus"]).lower()
            if status == "completed":
                return job
            if status in QUERY_DONE:
                reason = job.get("errorMessage") or "no reason given"
                raise DataQueryError(f"Data Query job {job_id} {status}: {reason}", job_id, status)
            left = deadline - time.monotonic()
            if left <= 0:
                raise DataQueryError(
                    f"Data Query job {job_id} still {status} after {timeout_s:g}s (the job keeps running in Zuora)",
                    job_id,
                    "timeout",
                )
            time.sleep(min(delay, left))
            delay = min(delay * 2, poll_s)

    def download_query_result(self, job: dict[str, Any]) -> str:
        """A completed job's result file, as CSV text (UTF-8)."""
        return self._fetch_result(job, keep=True).decode("utf-8")

    def download_query_result_to(self, job: dict[str, Any], path: str) -> int:
        """A completed job's result file written to the local `path` chunk by chunk (a bulk export of
        millions of rows is never held in memory); returns its size in bytes. A retry rewrites it."""
        return self._fetch_result(job, keep=path)

    def query_result_size(self, job: dict[str, Any]) -> int:
        """Bytes of a completed job's result file, streamed and counted, never held in memory (a
        full-field export can be hundreds of MB)."""
        return self._fetch_result(job, keep=False)

    def _fetch_result(self, job: dict[str, Any], keep: bool | str) -> Any:
        """The result file (bytes, or its size when not `keep`) through the hook's session, with
        retries (a retry restarts the download). `dataFile` may be a path on Zuora's host or an
        absolute URL: on Zuora's host the bearer token goes with it; on another host (a pre-signed URL
        to a bucket) it must not, since the URL carries its own signature and the token is Zuora's."""
        url = job.get("dataFile")
        if not url:
            status = str(job.get("queryStatus"))
            raise DataQueryError(
                f"Data Query job {job.get('id')} ({status}) has no dataFile", str(job.get("id")), status
            )
        self.get_conn()
        if not urlsplit(url).scheme:
            url = f"{self.base_url}/{url.lstrip('/')}"
        own_host = urlsplit(url).netloc.lower() == urlsplit(self.base_url).netloc.lower()
        return self._retrying()(self._download, url, own_host, keep)

    def _download(self, url: str, own_host: bool, keep: bool | str) -> Any:
        session = self.get_conn()
        options = {**self._send_options(session), "stream": True}
        where = urlsplit(url)._replace(query="", fragment="").geturl()  # a signature never reaches a log
        self._count_call()
        # Zuora's host: the bearer token; elsewhere _NoBasicAuth, so neither the token nor a ~/.netrc
        # login is sent (the session's Zuora headers, entity and version, are harmless to a bucket).
        auth: AuthBase = _Bearer(self._bearer()) if own_host else _NoBasicAuth()
        try:
            with session.get(url, auth=auth, **options) as r:
                if r.status_code >= 400:
                    raise ZuoraApiError(
                        f"GET {where}: HTTP {r.status_code} downloading a Data Query result",
                        status=r.status_code,
                        retry_after=_retry_after(r),
                    )
                if isinstance(keep, str):  # a local file to stream into
                    size = 0
                    with open(keep, "wb") as fh:
                        for chunk in r.iter_content(DOWNLOAD_CHUNK_BYTES):
                            size += fh.write(chunk)
                    return size
                if keep:
                    return b"".join(r.iter_content(DOWNLOAD_CHUNK_BYTES))
                return sum(len(chunk) for chunk in r.iter_content(DOWNLOAD_CHUNK_BYTES))
        except requests.RequestException as exc:
            raise ZuoraApiError(f"GET {where} failed: {type(exc).__name__}") from exc


def _base_url(conn_id: str, host: str | None, data_center: str | None) -> str:
    """The REST base URL: host (any URL, e.g. the emulator), or else the `data_center` picked in a
    `zuora` connection's form, which must be one of Zuora's: the extra never sends a secret elsewhere."""
    host, data_center = (host or "").strip().rstrip("/"), (data_center or "").strip().rstrip("/")
    if data_center and data_center not in DATA_CENTERS:
        raise ZuoraApiError(
            f"connection {conn_id!r}: data_center {data_center!r} is not one of Zuora's REST base URLs "
            f"({', '.join(DATA_CENTERS)}); put any other URL in host",
            transient=False,
            misconfigured=True,
        )
    if host and data_center and host != data_center:
        raise ZuoraApiError(
            f"connection {conn_id!r} names two base URLs, host {host!r} and data_center {data_center!r}: keep one",
            transient=False,
            misconfigured=True,
        )
    if not (host or data_center):
        raise ZuoraApiError(
            f"connection {conn_id!r} has no REST base URL: set host (e.g. https://rest.na.zuora.com) "
            "or, for a zuora connection, pick a data center",
            transient=False,
            misconfigured=True,
        )
    return host or data_center


def _timeout(value: Any) -> Any:
    """The connection's extra `timeout` (seconds, or [connect, read] as JSON gives it), else Zuora's."""
    if isinstance(value, list):
        return tuple(value)
    return value or (CONNECT_TIMEOUT_S, READ_TIMEOUT_S)


def _no_answer(base_url: str, exc: requests.RequestException, timeout: Any = None) -> str:
    """Which host failed and why (DNS, refused, TLS, timeout), without the URL's query. `timeout` is
    what the request was given (a number or (connect, read)); default Zuora's."""
    host = urlsplit(base_url).netloc or base_url
    reason = exc.__class__.__name__
    if isinstance(exc, requests.exceptions.SSLError):
        reason = "TLS handshake failed"
    elif isinstance(exc, requests.exceptions.ConnectTimeout):
        reason = "connection timed out"
    elif isinstance(exc, requests.exceptions.ReadTimeout):
        read = timeout[-1] if isinstance(timeout, (tuple, list)) else timeout
        reason = f"no answer within {read or READ_TIMEOUT_S}s"
    elif isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc)
        if "Name or service not known" in text or "NameResolution" in text or "getaddrinfo" in text:
            reason = "DNS lookup failed"
        elif "refused" in text.lower():
            reason = "connection refused"
        else:
            reason = "connection failed"
    detail = str(getattr(exc, "args", [""])[0] if exc.args else "")
    detail = re.sub(r"\?[^ )'\"]*", "", detail)[-200:]  # drop any query string
    return f"{host} failed: {reason} ({detail})" if detail else f"{host} failed: {reason}"


def _retry_after(r: requests.Response) -> float | None:
    value = r.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _error(method: str, path: str, r: requests.Response, request_id: str | None) -> ZuoraApiError:
    code, message = None, r.reason
    try:
        body = r.json()
        reasons = body.get("reasons") if isinstance(body, dict) else None
        if reasons:
            code, message = reasons[0].get("code"), reasons[0].get("message", message)
        elif isinstance(body, dict) and body.get("message"):
            message = body["message"]
    except ValueError:
        pass
    try:
        code = int(code) if code is not None else None
    except (TypeError, ValueError):
        code = None
    return ZuoraApiError(
        f"{method} {path}: HTTP {r.status_code} code {code}: {message} (request {request_id})",
        status=r.status_code,
        code=code,
        request_id=request_id,
        retry_after=_retry_after(r),
    )
