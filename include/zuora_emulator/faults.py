"""Deterministic fault injection: which request gets a 429, a 5xx, a delay, a dropped connection or
an expired token. Decisions come from a seeded RNG and request counters, so a profile replays the
same faults in the same request order.

A profile is JSON: {"seed": 7, "rules": [{"kind": "429", "every": 10, "retry_after": 1}, ...]}.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field

KINDS = ("429", "5xx", "slow", "drop", "token_expiry")


@dataclass
class FaultRule:
    kind: str
    match: str = "/object-query"  # path prefix the rule applies to
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


class FaultInjector:
    def __init__(self, profile: dict | None = None) -> None:
        profile = profile or {}
        self.profile = profile
        self.rng = random.Random(profile.get("seed", 0))
        self.rules = [FaultRule(**rule) for rule in profile.get("rules", [])]
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}

    def decide(self, path: str) -> FaultRule | None:
        if not self.rules:
            return None
        with self.lock:
            for rule in self.rules:
                if not path.startswith(rule.match):
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
