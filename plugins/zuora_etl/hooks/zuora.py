"""ZuoraHook: the one place that talks to Zuora's REST API.

It owns the `zuora_default` connection (type `zuora` or `http`, same fields: host = REST base
URL, login = client id, password = client secret; extra: entity_id, zuora_version, page_size,
max_attempts, backoff_seconds; a `timezone` key is accepted and unused, since Zuora's datetimes
carry their offset; a `zuora` connection made in the UI may leave host empty and pick extra
`data_center` instead, see provider.py), the OAuth token cache, retries and paging. Operators
stay thin and call it.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import requests
from airflow.exceptions import AirflowException
from airflow.sdk import BaseHook
from requests.adapters import HTTPAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from ..provider import DATA_CENTERS
from ..settings import ZUORA_CONN_ID

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


def _wait(base: float):
    exponential = wait_exponential_jitter(initial=base, max=MAX_BACKOFF_S, jitter=base)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, ZuoraApiError) and exc.retry_after is not None:
            return min(exc.retry_after, MAX_BACKOFF_S) + 0.1 * base  # Zuora said when; add a hair
        return exponential(state)

    return wait


class ZuoraHook(BaseHook):
    """Zuora's REST API through one Airflow connection (type `zuora`, or `http` with the same fields).

    The `zuora` connection type and its form are declared in `zuora_etl.provider` (Airflow 3.3 reads
    forms from provider info); `test_connection` backs the form's Test button by fetching a token.
    """

    conn_name_attr = "zuora_conn_id"
    default_conn_name = ZUORA_CONN_ID
    conn_type = "zuora"  # the provider's type; `http` connections with the same fields work alike
    hook_name = "Zuora"

    def __init__(self, zuora_conn_id: str = default_conn_name, track_prefix: str = "zuora-etl") -> None:
        super().__init__()
        self.zuora_conn_id = zuora_conn_id
        self.track_prefix = track_prefix[:40]
        self._session: requests.Session | None = None
        self._token: str | None = None
        self._token_expiry = 0.0
        self._token_lock = threading.Lock()
        self._seq = itertools.count(1)
        self._run_tag = uuid.uuid4().hex[:8]
        self.api_calls = 0  # calls to Zuora's API (token calls excluded), retries included
        self.token_calls = 0
        self.last_headers: Any = {}  # the last answer's headers (RateLimit-*, Concurrency-Limit-*)

    # ---------- connection ----------
    def get_conn(self) -> requests.Session:
        if self._session is None:
            conn = self.get_connection(self.zuora_conn_id)
            host = _base_url(self.zuora_conn_id, conn.host, conn.extra_dejson.get("data_center"))
            if not host.startswith(("http://", "https://")):
                scheme = conn.schema if conn.schema in ("http", "https") else "https"
                host = f"{scheme}://{host}"
            if conn.port and host.count(":") < 2:
                host = f"{host}:{conn.port}"
            extra = conn.extra_dejson
            self.base_url = host
            self.client_id, self._client_secret = conn.login, conn.password
            self.page_size = min(int(extra.get("page_size", MAX_PAGE_SIZE)), MAX_PAGE_SIZE)
            self.max_attempts = int(extra.get("max_attempts", DEFAULT_MAX_ATTEMPTS))
            self.backoff_s = float(extra.get("backoff_seconds", DEFAULT_BACKOFF_S))
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=4, pool_maxsize=16)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["Accept"] = "application/json"
            if extra.get("entity_id"):
                session.headers["Zuora-Entity-Ids"] = str(extra["entity_id"])
            if extra.get("zuora_version"):
                session.headers["Zuora-Version"] = str(extra["zuora_version"])
            self._session = session
        return self._session

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
                try:
                    r = session.post(
                        f"{self.base_url}/oauth/token",
                        data={
                            "client_id": self.client_id,
                            "client_secret": self._client_secret,
                            "grant_type": "client_credentials",
                        },
                        timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
                    )
                except requests.RequestException as exc:
                    raise ZuoraApiError(f"token request to {_no_answer(self.base_url, exc)}") from exc
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
        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, ZuoraApiError) and e.retryable),
            wait=_wait(self.backoff_s),
            stop=stop_after_attempt(self.max_attempts),
            before_sleep=self._log_retry,
            reraise=True,
        )
        return retrying(self._send, method, path, params, json)

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
        for refreshed in (False, True):
            token = self._bearer(force=refreshed)
            track = f"{self.track_prefix}-{self._run_tag}-{next(self._seq)}"[:64]
            headers = {"Authorization": f"Bearer {token}", "Zuora-Track-Id": track}
            self.api_calls += 1
            started = time.monotonic()
            try:
                r = session.request(
                    method,
                    f"{self.base_url}{path}",
                    params=params,
                    json=json,
                    headers=headers,
                    timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S),
                )
            except requests.RequestException as exc:
                raise ZuoraApiError(f"{method} {path} to {_no_answer(self.base_url, exc)}") from exc
            request_id = r.headers.get("Zuora-Request-Id")
            self.last_headers = r.headers
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
            request_id = self.last_headers.get("Zuora-Request-Id")
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


def _no_answer(base_url: str, exc: requests.RequestException) -> str:
    """Which host failed and why (DNS, refused, TLS, timeout), without the URL's query."""
    host = urlsplit(base_url).netloc or base_url
    reason = exc.__class__.__name__
    if isinstance(exc, requests.exceptions.SSLError):
        reason = "TLS handshake failed"
    elif isinstance(exc, requests.exceptions.ConnectTimeout):
        reason = "connection timed out"
    elif isinstance(exc, requests.exceptions.ReadTimeout):
        reason = f"no answer within {READ_TIMEOUT_S}s"
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
