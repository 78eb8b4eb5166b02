"""Deterministic fault injection: which request gets a 429, a 5xx, a delay, a dropped connection,
an expired token or an answer a client must not trust. Decisions come from a seeded RNG and request
counters, so a profile replays the same faults in the same request order.

A profile is JSON: {"seed": 7, "rules": [{"kind": "429", "every": 10, "retry_after": 1}, ...]}.
Each rule matches requests by path prefix (`match`, default "/object-query"; "/v1/" for
`memo_refuse`) and fires on every Nth matching request (`every`), or with a seeded `probability`,
`burst` times in a row, at most `max` times. The first rule that fires decides the request.

Kinds:
- `429`: HTTP 429 with `Retry-After: retry_after` and code 70, as Zuora's rate limiter answers.
- `5xx`: HTTP `status` (500) with Zuora error `code` (50000060 internal, 50000061 temporary).
- `slow`: the answer is held `delay_ms` milliseconds, then served normally.
- `drop`: the connection closes without an answer.
- `token_expiry`: every issued token expires before the request is checked (401 from then on).
- `not_json`: HTTP 200 with the HTML body `<html>gateway</html>` and content-type text/html, as a
  proxy or gateway in front of Zuora may answer.
- `repeat_cursor` (Object Query lists only): the answer's `nextPage` repeats the cursor the
  request sent; on a first page (no cursor sent) the page's own `nextPage` is repeated by the
  answer to the next request that sends it. A client that follows `nextPage` blindly loops.
- `missing_id` (Object Query only): the first record of the page (or the single record of a
  by-key read) comes back without its `id`.
- `memo_refuse` (`PUT /v1/credit-memos/{key}` and `PUT /v1/debit-memos/{key}` only): HTTP 200 with
  `{"success": false, "reasons": [{"code": 53000020, "message": ...}]}`; nothing changes.

Kinds limited to some requests (`repeat_cursor`, `missing_id`, `memo_refuse`) neither count nor
fire on other requests, so `every: 2` means every second request they can apply to.
"""

from __future__ import annotations

import random
import re
import threading
from dataclasses import dataclass, field

KINDS = (
    "429",
    "5xx",
    "slow",
    "drop",
    "token_expiry",
    "not_json",
    "repeat_cursor",
    "missing_id",
    "memo_refuse",
)
DEFAULT_MATCH = {"memo_refuse": "/v1/"}
_MEMO_PUT = re.compile(r"/v1/(credit|debit)-memos/[^/]+")


def _applies(kind: str, method: str, path: str) -> bool:
    """Whether a kind can apply to this request at all."""
    if kind in ("repeat_cursor", "missing_id"):
        return method == "GET" and path.startswith("/object-query/")
    if kind == "memo_refuse":
        return method == "PUT" and _MEMO_PUT.fullmatch(path) is not None
    return True


@dataclass
class FaultRule:
    kind: str
    match: str | None = None  # path prefix the rule applies to (None: the kind's default)
    probability: float = 0.0  # chance per matching request (seeded)...
    every: int = 0  # ...or every Nth matching request...
    burst: int = 1  # ...and the burst-1 requests after it
    max: int | None = None  # stop after this many injections
    status: int = 500  # for 5xx
    code: int = 50000060  # Zuora error code for 5xx (60 internal, 61 temporary)
    retry_after: int = 1  # seconds, for 429
    delay_ms: int = 500  # for slow
    seen: int = field(default=0, repr=False)
    injected: int = field(default=0, repr=False)
    burst_left: int = field(default=0, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of {', '.join(KINDS)}")
        if self.match is None:
            self.match = DEFAULT_MATCH.get(self.kind, "/object-query")


class FaultInjector:
    def __init__(self, profile: dict | None = None) -> None:
        profile = profile or {}
        self.profile = profile
        self.rng = random.Random(profile.get("seed", 0))
        self.rules = [FaultRule(**rule) for rule in profile.get("rules", [])]
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        # Cursors a `repeat_cursor` fault handed out on a first page: the next answer to a request
        # sending one of them repeats it as its own nextPage.
        self.repeat_pending: set[str] = set()

    def decide(self, path: str, method: str = "GET") -> FaultRule | None:
        if not self.rules:
            return None
        with self.lock:
            for rule in self.rules:
                if not path.startswith(rule.match) or not _applies(rule.kind, method, path):
                    continue
                rule.seen += 1
                if rule.max is not None and rule.injected >= rule.max:
                    continue
                hit = False
                if rule.burst_left > 0:
                    rule.burst_left -= 1
                    hit = True
                elif (rule.every and rule.seen % rule.every == 0) or (
                    rule.probability and self.rng.random() < rule.probability
                ):
                    rule.burst_left = rule.burst - 1
                    hit = True
                if hit:
                    rule.injected += 1
                    self.counts[rule.kind] = self.counts.get(rule.kind, 0) + 1
                    return rule
        return None

    def next_page(self, sent: str | None, next_cursor: str | None, repeat: bool) -> str | None:
        """The nextPage to answer, given the cursor the request sent and whether a `repeat_cursor`
        fault fired on it."""
        if not repeat and not self.repeat_pending:
            return next_cursor
        with self.lock:
            if sent is not None and sent in self.repeat_pending:
                self.repeat_pending.discard(sent)
                return sent
            if not repeat:
                return next_cursor
            if sent is not None:
                return sent
            if next_cursor is not None:
                self.repeat_pending.add(next_cursor)
            return next_cursor
