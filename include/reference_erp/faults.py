"""The reference ERP's fault profile: which API request answers 429 or 5xx, which documents are
refused, which answers are lost, how slow answers are.

A profile is a JSON object; every key is optional:

- `rate_limit_per_second` (number): at most floor(rate) API requests are let through in any sliding
  1-second window, from all clients together (a rate below 1 lets one request through per 1/rate
  seconds). Requests beyond it answer 429 `{"error": "rate limited"}` with `Retry-After`. Only the
  requests let through take room in the window.
- `retry_after_s` (integer >= 0, default 1): the `Retry-After` of every 429 this profile answers.
- `every` (`{"429": N, "500": M, "503": K}`, any 4xx/5xx status as key): the Nth, 2Nth, ... API
  request answers that status. When several statuses hit the same request, the first key wins.
- `script` (list of statuses or nulls): the first API requests answer these statuses in order; a
  null lets its request through (to `every` and the rate limit).
- `reject` (`{"<external_id>": "<reason>"}`): create, batch item, PUT and PATCH of that document
  answer 422 `{"error": "<reason>", "external_id": ...}`; cancel and GET are not refused.
- `lose_answer_every` (integer >= 1): every Nth write request (POST/PUT/PATCH) the server processes
  is committed, its answer stored under its Idempotency-Key if any, then the connection is closed
  without an answer.
- `latency_ms` (number >= 0): added to every API answer.
- `description` (string): ignored, for the profile's reader.

Counting: the `every`/`script` counter counts the authenticated `/api/` requests since the profile
was set (a 401 answers before any fault and counts nowhere); the order of decision is `script`,
then `every`, then the rate limit. The `lose_answer_every` counter counts the write requests that
got past those (the ones processed, idempotent replays included). Setting a profile (or a reset)
starts every counter and the rate window afresh, so a profile replays the same faults for the same
sequence of requests.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus

KEYS = (
    "rate_limit_per_second",
    "retry_after_s",
    "every",
    "script",
    "reject",
    "lose_answer_every",
    "latency_ms",
    "description",
)


@dataclass(frozen=True)
class InjectedStatus:
    """An answer decided by the profile before the request is processed."""

    status: int
    body: dict
    headers: dict[str, str]


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _status(value: object, where: str) -> int:
    try:
        status = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {value!r} is not an HTTP status") from None
    if isinstance(value, bool) or (_number(value) and status != value) or not 400 <= status <= 599:
        raise ValueError(f"{where}: {value!r} is not a 4xx or 5xx status")
    return status


def validate(profile: dict | None) -> dict:
    """The profile, checked (ValueError on anything unknown or ill-typed); None is the empty profile."""
    if profile is None:
        return {}
    if not isinstance(profile, dict):
        raise ValueError("a fault profile is a JSON object")
    unknown = sorted(set(profile) - set(KEYS))
    if unknown:
        raise ValueError(f"unknown fault keys {unknown}; use {', '.join(KEYS)}")
    rate = profile.get("rate_limit_per_second")
    if rate is not None and (not _number(rate) or rate <= 0):
        raise ValueError("rate_limit_per_second must be a number > 0 (or null)")
    retry = profile.get("retry_after_s", 1)
    if not isinstance(retry, int) or isinstance(retry, bool) or retry < 0:
        raise ValueError("retry_after_s must be an integer >= 0")
    every = profile.get("every") or {}
    if not isinstance(every, dict):
        raise ValueError('every must be an object such as {"429": 5, "500": 7}')
    for status, n in every.items():
        _status(status, "every")
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"every[{status!r}] must be an integer >= 1")
    script = profile.get("script") or []
    if not isinstance(script, list):
        raise ValueError("script must be a list of statuses or nulls")
    for item in script:
        if item is not None:
            _status(item, "script")
    reject = profile.get("reject") or {}
    if not isinstance(reject, dict) or not all(isinstance(v, str) and v for v in reject.values()):
        raise ValueError('reject must map external ids to reasons, e.g. {"8ad0...": "period closed"}')
    lose = profile.get("lose_answer_every")
    if lose is not None and (not isinstance(lose, int) or isinstance(lose, bool) or lose < 1):
        raise ValueError("lose_answer_every must be an integer >= 1 (or null)")
    latency = profile.get("latency_ms", 0)
    if not _number(latency) or latency < 0:
        raise ValueError("latency_ms must be a number >= 0")
    if not isinstance(profile.get("description", ""), str):
        raise ValueError("description must be a string")
    return copy.deepcopy(profile)


def status_answer(status: int, retry_after_s: int) -> InjectedStatus:
    if status == 429:
        return InjectedStatus(429, {"error": "rate limited"}, {"Retry-After": str(retry_after_s)})
    try:
        phrase = HTTPStatus(status).phrase.lower()
    except ValueError:
        phrase = "injected error"
    return InjectedStatus(status, {"error": phrase}, {})


class Faults:
    """A validated profile and its counters; thread-safe."""

    def __init__(self, profile: dict | None = None) -> None:
        self.profile = validate(profile)
        p = self.profile
        self.rate: float | None = p.get("rate_limit_per_second")
        self.retry_after_s: int = p.get("retry_after_s", 1)
        self.every = [(_status(s, "every"), n) for s, n in (p.get("every") or {}).items()]
        self.script = [None if s is None else _status(s, "script") for s in p.get("script") or []]
        self.reject: dict[str, str] = dict(p.get("reject") or {})
        self.lose_every: int | None = p.get("lose_answer_every")
        self.latency_s = float(p.get("latency_ms", 0)) / 1000
        if self.rate is not None:
            self.window_s, self.window_cap = (1.0, math.floor(self.rate)) if self.rate >= 1 else (1 / self.rate, 1)
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Start the counters and the rate window afresh (the profile stays)."""
        with self.lock:
            self.api_requests = 0
            self.writes = 0
            self.admitted: deque[float] = deque()

    def on_request(self, now: float | None = None) -> InjectedStatus | None:
        """Count an authenticated API request; the answer it must get instead of being processed."""
        now = time.monotonic() if now is None else now
        with self.lock:
            self.api_requests += 1
            n = self.api_requests
            if n <= len(self.script) and self.script[n - 1] is not None:
                return status_answer(self.script[n - 1], self.retry_after_s)  # type: ignore[arg-type]
            for status, every in self.every:
                if n % every == 0:
                    return status_answer(status, self.retry_after_s)
            if self.rate is not None:
                while self.admitted and self.admitted[0] <= now - self.window_s:
                    self.admitted.popleft()
                if len(self.admitted) >= self.window_cap:
                    return status_answer(429, self.retry_after_s)
                self.admitted.append(now)
        return None

    def rejection(self, external_id: str | None) -> str | None:
        return self.reject.get(external_id) if external_id is not None else None

    def lose_answer(self) -> bool:
        """Count a processed write request; whether its answer is to be lost."""
        with self.lock:
            self.writes += 1
            return self.lose_every is not None and self.writes % self.lose_every == 0
