"""The gate every Zuora call of a task process passes: a cap on calls in flight, and a pause before
Zuora's concurrency limit is reached instead of a 429 after it.

Zuora allows a tenant a fixed number of Object Query requests at once (40 to 80) and answers each
with `Concurrency-Limit-Limit` and `Concurrency-Limit-Remaining`. The `zuora_api` pool bounds the
task processes; this gate bounds the threads of one process (a task reading slices or chunks of ids
at once) and, when Zuora says few requests are left, holds new ones for a short, growing, jittered
pause: other tasks of the tenant (ours or not) get the room, and no request is sent to be refused.

Written here because no library does both: tenacity retries after a failure, and a semaphore alone
does not read Zuora's headers.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

# Keep this share of Zuora's concurrency limit free (at least CONCURRENCY_RESERVE_MIN requests): other
# processes of the same tenant send at the same moment, and their requests must find room too.
CONCURRENCY_RESERVE_SHARE = 0.1
CONCURRENCY_RESERVE_MIN = 2
# The first pause when few requests are left: about one Object Query answer's time. It doubles while
# Zuora keeps saying few are left, up to HOLD_MAX_S, and ends at once when it says more are free.
HOLD_BASE_S = 0.25
HOLD_MAX_S = 4.0


class ConcurrencyGate:
    """At most `limit` calls in flight at once in this process, and never more than Zuora's own limit
    less its reserve; new calls wait while a pause holds.

    Zuora's limit is learnt from the first answer that carries it: until then one call goes at a
    time (a burst of threads sent blind could overrun a tenant whose limit is low).
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a concurrency gate needs a limit of at least 1, not {limit}")
        self.limit = limit
        self.zuora_limit: int | None = None  # Concurrency-Limit-Limit, once an answer told it
        self.in_flight = 0
        self.max_in_flight = 0  # the most at once since the gate was made (the benchmark reads it)
        self.holds = 0  # pauses taken because Zuora said few requests were left
        self._hold_until = 0.0
        self._low_streak = 0
        self._cond = threading.Condition()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the gate's places for the length of a call."""
        with self._cond:
            while True:
                wait = self._hold_until - time.monotonic()
                if self.in_flight < self.cap and wait <= 0:
                    break
                self._cond.wait(wait if wait > 0 else None)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            yield
        finally:
            with self._cond:
                self.in_flight -= 1
                self._cond.notify()

    @property
    def cap(self) -> int:
        """Calls allowed in flight now: the gate's limit within Zuora's limit less the reserve; one
        until Zuora's limit is known."""
        if self.zuora_limit is None:
            return 1
        return max(1, min(self.limit, self.zuora_limit - _reserve(self.zuora_limit)))

    def observe(self, headers: Mapping[str, Any]) -> float:
        """Read an answer's concurrency headers; the pause it started (0.0 when none)."""
        limit = _int(headers.get("Concurrency-Limit-Limit"))
        remaining = _int(headers.get("Concurrency-Limit-Remaining"))
        if limit is None or remaining is None:
            return 0.0
        with self._cond:
            if self.zuora_limit != limit:
                self.zuora_limit = limit
                self._cond.notify_all()  # the cap changed: waiting calls may go
            if remaining > _reserve(limit):
                self._low_streak = 0
                if self._hold_until > time.monotonic():
                    self._hold_until = 0.0
                    self._cond.notify_all()
                return 0.0
            self._low_streak += 1
            self.holds += 1
            pause = min(HOLD_MAX_S, HOLD_BASE_S * 2 ** (self._low_streak - 1)) * random.uniform(0.5, 1.0)
            self._hold_until = max(self._hold_until, time.monotonic() + pause)
            return pause


def _reserve(zuora_limit: int) -> int:
    return max(CONCURRENCY_RESERVE_MIN, math.ceil(zuora_limit * CONCURRENCY_RESERVE_SHARE))


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


_gates: dict[tuple[str, int], ConcurrencyGate] = {}
_gates_lock = threading.Lock()


def gate_for(base_url: str, limit: int) -> ConcurrencyGate:
    """The process's one gate for a Zuora base URL and limit: every hook of a task shares it."""
    with _gates_lock:
        return _gates.setdefault((base_url, limit), ConcurrencyGate(limit))
