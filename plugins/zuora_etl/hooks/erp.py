"""ErpHook: HTTP to an ERP's (or CRM's) REST API, for the families whose sink connection is `http`.

The hook only talks HTTP; the sink decides what to send and what an answer means. It is an
`HttpHook` (apache-airflow-providers-http), so the connection works as any `http` connection: host
= base URL (with scheme, or the schema field), login/password = HTTP Basic auth, extra `proxies`,
`verify`, `cert`, `trust_env`, `timeout`… as the HTTP provider reads them, and any other extra key
is an HTTP header (an API key header, say), except the keys below, which are this hook's settings:

- `rate_per_second` (float, default 5.0): calls per second to this connection from this process,
  every hook and thread together (0 = no limit);
- `daily_call_budget` (int, default none = unlimited): calls per UTC day. The sink passes a
  `budget` callable backed by the state database (`StateStore.take_calls`), so the budget holds
  across tasks, workers and runs; without one, an in-process counter per connection and UTC day is
  used, which only bounds this process;
- `max_attempts` (default 6), `backoff_seconds` (default 1.0): retries of 429, 5xx and dropped
  connections, with exponential backoff and jitter, or the `Retry-After` the ERP asked for;
- `timeout_seconds` (default 60): connect and read timeout of each attempt (HttpHook's own
  `timeout` key wins when given);
- `health_endpoint` (default the base URL): what `test_connection` GETs.

`send` returns every answer the caller can act on (2xx, and 4xx refusals such as 400, 404, 409,
422) as an `ErpAnswer`; it raises `ErpAuthError` on 401/403 (no retry can fix credentials),
`ErpUnavailable` when the retries are spent, and `ErpBudgetExhausted` when the day's budget is.
"""

from __future__ import annotations

import email.utils
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import requests
from airflow.exceptions import AirflowException
from airflow.providers.http.hooks.http import HttpHook
from airflow.sdk.exceptions import AirflowFailException
from requests_toolbelt.adapters.socket_options import TCPKeepAliveAdapter
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential_jitter

# Calls per second per connection. ERP and CRM REST APIs commonly throttle an integration user at
# around 10 requests per second or less (some per minute); half of that leaves room for the other
# integrations sharing the user and avoids living on 429s. Raise it per connection to the target's
# documented limit.
DEFAULT_RATE_PER_SECOND = 5.0
# No daily quota unless the connection says so: only some ERPs meter calls per day (and a wrong
# guess here would stop deliveries for nothing).
DEFAULT_DAILY_CALL_BUDGET: int | None = None
# 6 attempts with backoff from 1 s doubling (1+2+4+8+16 s, plus jitter) ride out about half a minute
# of throttling, a deploy or a failover; a longer outage is for the task's own retry, later.
DEFAULT_MAX_ATTEMPTS = 6
DEFAULT_BACKOFF_S = 1.0
# A document create can take seconds on a busy ERP; an answer slower than a minute is a stuck call,
# retried under the same Idempotency-Key.
DEFAULT_TIMEOUT_S = 60.0
# Longest wait for one retry: a Retry-After further away than this is capped (the rest is for the
# next attempt or the next run), and so is the exponential backoff.
MAX_RETRY_AFTER_S = 60.0
MAX_BACKOFF_S = 60.0
# Keep-alive pool: the sink may call from a few threads through one hook.
POOL_CONNECTIONS = 4
POOL_MAXSIZE = 16
# TCP keep-alive probes, HttpHook's own defaults.
TCP_KEEP_ALIVE = {"idle": 120, "count": 20, "interval": 30}

# Connection extra keys that are this hook's settings, never HTTP headers.
ERP_EXTRA_KEYS = frozenset(
    {"rate_per_second", "daily_call_budget", "max_attempts", "backoff_seconds", "timeout_seconds", "health_endpoint"}
)


class ErpAuthError(AirflowFailException):
    """401/403: the ERP refused the connection's credentials (or their rights). Fails the task at
    once: retrying cannot fix a password."""


class ErpUnavailable(AirflowException):
    """No usable answer after every attempt (429s, 5xx, dropped connections, timeouts): the task's
    own retry, or the next run, tries again."""


class ErpBudgetExhausted(AirflowException):
    """The connection's daily call budget is spent: nothing was sent; the next run (or day) sends
    the rest."""


@dataclass
class ErpAnswer:
    status: int
    body: Any  # decoded JSON; {"error": <text>} when the answer is not JSON; None when it is empty
    request_id: str | None  # the answer's Request-Id / X-Request-Id header, if any
    replayed: bool  # Idempotent-Replayed: true, the ERP answered a key it had already seen

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class ErpSettings:
    """This hook's connection extra keys, parsed."""

    rate_per_second: float = DEFAULT_RATE_PER_SECOND
    daily_call_budget: int | None = DEFAULT_DAILY_CALL_BUDGET
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_seconds: float = DEFAULT_BACKOFF_S
    timeout_seconds: float = DEFAULT_TIMEOUT_S
    health_endpoint: str | None = None


class _Retry(Exception):
    """An attempt worth repeating: a 429 or 5xx (`status`), or no answer (`error`)."""

    def __init__(self, status: int | None = None, error: str | None = None, retry_after: float | None = None):
        super().__init__(f"HTTP {status}" if status is not None else error)
        self.status, self.error, self.retry_after = status, error, retry_after


class _Limiter:
    """A token bucket of capacity one per connection: one call every 1/rate seconds, whichever
    thread or hook makes it. A slot is reserved under the lock and waited for outside it, so
    waiting threads queue in order. `hold` pushes every caller back (a 429's Retry-After)."""

    def __init__(self) -> None:
        self.next_free = 0.0

    def reserve(self, rate: float, now: float) -> float:
        """The time to wait before this call may go (the caller holds the class lock)."""
        start = max(now, self.next_free)
        self.next_free = start + 1.0 / rate
        return start - now

    def hold(self, until: float) -> None:
        self.next_free = max(self.next_free, until)


class ErpHook(HttpHook):
    """An ERP's REST API through one `http` connection: rate limit, daily budget, retries with an
    idempotency key, and answers the sink can act on.

    Overridden from `HttpHook`: `get_conn` (one pooled session per hook, built once by
    `HttpHook.get_conn`; with headers or extra_options a new one, as HttpHook does),
    `_configure_session_from_extra` (this hook's extra keys are settings, not headers) and
    `test_connection` (a GET of the base URL or `health_endpoint`, not HttpHook's POST). Auth, base
    URL, proxies, TLS and headers are HttpHook's own.
    """

    conn_name_attr = "erp_conn_id"
    default_conn_name = "zuora_erp_sink"
    conn_type = "http"
    hook_name = "ERP REST API"

    # Shared by every ErpHook of a connection in this process: the rate and the fallback budget are
    # the connection's, not one hook's.
    _limits_lock = threading.Lock()
    _limiters: dict[str, _Limiter] = {}
    _day_calls: dict[tuple[str, date], int] = {}

    def __init__(self, erp_conn_id: str = default_conn_name, budget: Callable[[int], int | None] | None = None) -> None:
        super().__init__(method="POST", http_conn_id=erp_conn_id)
        self.keep_alive_adapter = TCPKeepAliveAdapter(
            **TCP_KEEP_ALIVE, pool_connections=POOL_CONNECTIONS, pool_maxsize=POOL_MAXSIZE
        )
        self.erp_conn_id = erp_conn_id
        self.budget = budget
        self._settings = ErpSettings()
        self._session: requests.Session | None = None
        self._session_lock = threading.Lock()
        self._session_extra: dict[str, Any] = {}
        self._counter_lock = threading.Lock()
        self.calls = 0  # attempts sent (every attempt is a call)
        self.retries = 0  # attempts repeated after a 429, 5xx or no answer
        self.throttled = 0  # 429 answers seen

    # ---------- connection ----------
    def get_conn(
        self, headers: dict[Any, Any] | None = None, extra_options: dict[str, Any] | None = None
    ) -> requests.Session:
        """The hook's pooled session (built on first use); with headers or extra_options, a new
        session as `HttpHook.get_conn` makes one."""
        if headers or extra_options:
            return super().get_conn(headers, extra_options)
        with self._session_lock:
            if self._session is None:
                session = super().get_conn()
                session.headers.setdefault("Accept", "application/json")
                self._session_extra = dict(self.merged_extra)
                self._session = session
            return self._session

    def _configure_session_from_extra(
        self, session: requests.Session, connection: Any, extra_options: dict[str, Any]
    ) -> requests.Session:
        session = super()._configure_session_from_extra(session, connection, extra_options)
        for key in ERP_EXTRA_KEYS:
            session.headers.pop(key, None)
        self._settings = _parse_settings(self.erp_conn_id, connection.extra_dejson)
        return session

    @property
    def settings(self) -> ErpSettings:
        """The connection's settings (reads the connection on first use)."""
        self.get_conn()
        return self._settings

    @property
    def daily_call_budget(self) -> int | None:
        """The connection's `daily_call_budget` (what a state-database `budget` callable enforces)."""
        return self.settings.daily_call_budget

    def test_connection(self) -> tuple[bool, str]:
        """GET the base URL (or extra `health_endpoint`): fine on any answer below 500 except
        401/403. The message never carries the password."""
        password = None
        try:
            session = self.get_conn()
            password = session.auth.password if hasattr(session.auth, "password") else None
            endpoint = self._settings.health_endpoint
            url = self.url_from_endpoint(endpoint) if endpoint else self.base_url
            r = session.get(url, **self._send_options(session))
            if r.status_code in (401, 403):
                return False, f"{url} refused the credentials of connection {self.erp_conn_id!r}: HTTP {r.status_code}"
            if r.status_code >= 500:
                return False, f"{url} answered HTTP {r.status_code}"
            return True, f"{url} answered HTTP {r.status_code}"
        except requests.RequestException as exc:
            message = f"{self.base_url or self.erp_conn_id} failed: {_no_answer(exc, self._settings.timeout_seconds)}"
        except Exception as exc:  # shown in the Airflow UI's connection test
            message = str(exc) or type(exc).__name__
        return False, message.replace(password, "***") if password else message

    # ---------- calls ----------
    def send(self, method: str, endpoint: str, json: Any = None, idempotency_key: str | None = None) -> ErpAnswer:
        """One request with the rate limit, the daily budget and retries; see the module docstring.

        The same `Idempotency-Key` goes with every attempt, so an ERP that honours it never creates
        a second document when an attempt whose answer was lost is repeated. Without a key, a POST
        repeated after a timeout may be applied twice: the sink should always pass one."""
        session = self.get_conn()
        settings = self._settings
        method = method.upper()
        url = self.url_from_endpoint(endpoint)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        options = self._send_options(session)
        attempt = 0

        def one() -> ErpAnswer:
            nonlocal attempt
            attempt += 1
            self._take_budget(settings)
            self._take_rate(settings)
            with self._counter_lock:
                self.calls += 1
            started = time.monotonic()
            try:
                r = session.request(method, url, json=json, headers=headers, **options)
            except requests.exceptions.SSLError as exc:  # a certificate problem: no retry changes it
                raise ErpUnavailable(
                    f"{method} {endpoint}: {_no_answer(exc, settings.timeout_seconds)} "
                    f"(connection {self.erp_conn_id!r}, attempt {attempt}, not retried)"
                ) from exc
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                self.log.debug("%s %s -> no answer (attempt %d): %s", method, endpoint, attempt, type(exc).__name__)
                raise _Retry(error=_no_answer(exc, settings.timeout_seconds)) from exc
            answer = _answer(r)
            self.log.debug(
                "%s %s -> %s in %.0f ms (attempt %d, request %s)",
                method,
                endpoint,
                r.status_code,
                (time.monotonic() - started) * 1000,
                attempt,
                answer.request_id,
            )
            if r.status_code == 429 or r.status_code >= 500:
                retry_after = _retry_after(r.headers.get("Retry-After"))
                if r.status_code == 429:
                    with self._counter_lock:
                        self.throttled += 1
                    if retry_after:  # the ERP asked the whole connection to wait, not just this call
                        self._hold(time.monotonic() + retry_after)
                raise _Retry(status=r.status_code, retry_after=retry_after)
            if r.status_code in (401, 403):
                raise ErpAuthError(
                    f"{method} {endpoint}: HTTP {r.status_code}: the ERP refused the credentials of connection "
                    f"{self.erp_conn_id!r} (login/password or the auth header in its extra); not retried"
                )
            return answer

        retrying = Retrying(
            retry=retry_if_exception_type(_Retry),
            wait=_wait(settings.backoff_seconds),
            stop=stop_after_attempt(max(1, settings.max_attempts)),
            before_sleep=lambda state: self._log_retry(method, endpoint, settings.max_attempts, state),
            reraise=True,
        )
        try:
            return retrying(one)
        except _Retry as exc:
            last = f"HTTP {exc.status}" if exc.status is not None else exc.error
            raise ErpUnavailable(
                f"{method} {endpoint}: no usable answer from connection {self.erp_conn_id!r} after {attempt} "
                f"attempts (last: {last})"
            ) from exc

    def _send_options(self, session: requests.Session) -> dict[str, Any]:
        """What `HttpHook.run_and_check` passes with each request: the session's proxies, TLS and
        stream settings given explicitly (so environment proxies or CA bundles do not override what
        the connection says), a timeout and redirects."""
        timeout = self._session_extra.get("timeout")
        return {
            "proxies": dict(session.proxies),  # a copy: requests adds environment proxies to it
            "verify": session.verify,
            "cert": session.cert,
            "stream": session.stream,
            "timeout": tuple(timeout) if isinstance(timeout, list) else timeout or self._settings.timeout_seconds,
            "allow_redirects": self._session_extra.get("allow_redirects", True),
        }

    def _log_retry(self, method: str, endpoint: str, attempts: int, state: RetryCallState) -> None:
        with self._counter_lock:
            self.retries += 1
        exc = state.outcome.exception() if state.outcome else None
        self.log.warning(
            "ERP call %s %s failed (attempt %d/%d: %s), retrying in %.1fs",
            method,
            endpoint,
            state.attempt_number,
            attempts,
            exc,
            state.next_action.sleep if state.next_action else 0,
        )

    def _take_rate(self, settings: ErpSettings) -> None:
        if settings.rate_per_second <= 0:
            return
        with self._limits_lock:
            limiter = self._limiters.setdefault(self.erp_conn_id, _Limiter())
            wait = limiter.reserve(settings.rate_per_second, time.monotonic())
        if wait > 0:
            time.sleep(wait)

    def _hold(self, until: float) -> None:
        with self._limits_lock:
            self._limiters.setdefault(self.erp_conn_id, _Limiter()).hold(until)

    def _take_budget(self, settings: ErpSettings) -> None:
        limit = settings.daily_call_budget
        if limit is None:
            return
        left = self.budget(1) if self.budget is not None else self._take_in_process(limit)
        if left is None:
            raise ErpBudgetExhausted(
                f"connection {self.erp_conn_id!r}: the daily call budget of {limit} calls is spent for today (UTC); "
                "nothing was sent, the rest is retried by the next run (or the next day)"
            )

    def _take_in_process(self, limit: int) -> int | None:
        """The fallback budget: this process's calls to the connection today (UTC)."""
        today = datetime.now(UTC).date()
        key = (self.erp_conn_id, today)
        with self._limits_lock:
            for old in [k for k in self._day_calls if k[0] == self.erp_conn_id and k[1] != today]:
                del self._day_calls[old]
            used = self._day_calls.get(key, 0)
            if used >= limit:
                return None
            self._day_calls[key] = used + 1
            return limit - used - 1


def _parse_settings(conn_id: str, extra: dict[str, Any]) -> ErpSettings:
    def number(key: str, default: Any, cast: Callable[[Any], Any]) -> Any:
        value = extra.get(key)
        if value is None or value == "":
            return default
        try:
            return cast(value)
        except (TypeError, ValueError):
            raise AirflowFailException(f"connection {conn_id!r}: extra {key}={value!r} is not a number") from None

    return ErpSettings(
        rate_per_second=number("rate_per_second", DEFAULT_RATE_PER_SECOND, float),
        daily_call_budget=number("daily_call_budget", DEFAULT_DAILY_CALL_BUDGET, int),
        max_attempts=number("max_attempts", DEFAULT_MAX_ATTEMPTS, int),
        backoff_seconds=number("backoff_seconds", DEFAULT_BACKOFF_S, float),
        timeout_seconds=number("timeout_seconds", DEFAULT_TIMEOUT_S, float),
        health_endpoint=extra.get("health_endpoint") or None,
    )


def _answer(r: requests.Response) -> ErpAnswer:
    body: Any = None
    if r.content:
        try:
            body = r.json()
        except ValueError:
            body = {"error": r.text[:2000]}
    return ErpAnswer(
        status=r.status_code,
        body=body,
        request_id=r.headers.get("Request-Id") or r.headers.get("X-Request-Id"),
        replayed=r.headers.get("Idempotent-Replayed", "").strip().lower() == "true",
    )


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds from now (delta-seconds or an HTTP date), capped at a minute."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _wait(base: float) -> Callable[[RetryCallState], float]:
    exponential = wait_exponential_jitter(initial=base, max=MAX_BACKOFF_S, jitter=base)

    def wait(state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Retry) and exc.retry_after is not None:
            return exc.retry_after  # the ERP said when
        return exponential(state)

    return wait


def _no_answer(exc: requests.RequestException, timeout: float) -> str:
    """Why there was no answer, without the URL (or anything else a message might quote)."""
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake failed"
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connection timed out"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return f"no answer within {timeout:g}s"
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "connection dropped mid-answer"
    text = str(exc)
    if "Name or service not known" in text or "NameResolution" in text or "getaddrinfo" in text:
        return "DNS lookup failed"
    if "refused" in text.lower():
        return "connection refused"
    if "aborted" in text.lower() or "RemoteDisconnected" in text or "reset" in text.lower():
        return "connection dropped"
    return f"connection failed ({type(exc).__name__})"
