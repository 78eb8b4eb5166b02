"""Threshold alerts as pure functions: counts and times in, conditions out, and which of them to
send now. The watch DAG (watch_dag.py) gathers the inputs and remembers what it sent.

- **dead letters**: an object with more open dead letters (quarantined at transform, refused at load,
  not flagged at mark) than the threshold.
- **watermark lag**: an object whose data is older than the allowed lag: the later of its watermark
  (the newest `updatedDate` loaded) and the end of the last window a sync read completely (an object
  with no changes in Zuora keeps its watermark but is current). An object never synced is not
  lagging: its first load has not happened.
- **when to send**: a condition alerts when it starts, and again each re-alert interval while it
  lasts; a condition that ends is forgotten, so its next start alerts at once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from .messages import Alert

# What each dead-letter stage means to a reader.
STAGE_WORDS = {"transform": "quarantined", "load": "refused", "mark": "not flagged in Zuora"}


@dataclass(frozen=True)
class Condition:
    """A threshold crossed: `key` identifies it across checks (kind, family, object)."""

    kind: str
    family: str
    object: str
    detail: str
    value: float
    threshold: float

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.family}:{self.object}"


def dead_letter_conditions(counts: Mapping[tuple[str, str, str], int], threshold: int) -> list[Condition]:
    """`counts`: open dead letters per (family, object, stage); an object above `threshold` in all
    stages together is a condition."""
    per_object: dict[tuple[str, str], Counter[str]] = {}
    for (family, obj, stage), n in counts.items():
        per_object.setdefault((family, obj), Counter())[stage] += n
    found = []
    for (family, obj), stages in sorted(per_object.items()):
        total = sum(stages.values())
        if total > threshold:
            parts = ", ".join(f"{n} {STAGE_WORDS.get(s, s)}" for s, n in sorted(stages.items()) if n)
            detail = f"{total} open dead letters ({parts}), above the threshold {threshold}"
            found.append(Condition("dead_letters", family, obj, detail, total, threshold))
    return found


def freshness(watermark: datetime | None, last_read: datetime | None) -> datetime | None:
    """Up to when the object's data is known current: the later of the two (None: never synced)."""
    known = [t for t in (watermark, last_read) if t is not None]
    return max(known) if known else None


def watermark_lag_conditions(
    marks: Mapping[tuple[str, str], tuple[datetime | None, datetime | None]], now: datetime, max_lag: timedelta
) -> list[Condition]:
    """`marks`: per (family, object), its watermark and the end of its last completely read sync
    window (aware UTC datetimes or None). An object current up to longer ago than `max_lag` is a
    condition."""
    found = []
    for (family, obj), (watermark, last_read) in sorted(marks.items()):
        current = freshness(watermark, last_read)
        if current is None:
            continue
        lag = now - current
        if lag > max_lag:
            detail = (
                f"data current only up to {current.isoformat()} ({_minutes(lag)} behind now, allowed "
                f"{_minutes(max_lag)}); watermark {watermark.isoformat() if watermark else 'unset'}"
            )
            found.append(Condition("watermark_lag", family, obj, detail, lag.total_seconds(), max_lag.total_seconds()))
    return found


def due(
    conditions: Iterable[Condition], sent: Mapping[str, datetime], now: datetime, realert: timedelta
) -> list[Condition]:
    """The conditions to send now: new ones, and ones last sent at least `realert` ago."""
    return [c for c in conditions if c.key not in sent or now - sent[c.key] >= realert]


def ended(conditions: Iterable[Condition], sent: Mapping[str, datetime]) -> list[str]:
    """Keys remembered as sent whose condition no longer holds."""
    live = {c.key for c in conditions}
    return sorted(k for k in sent if k not in live)


def condition_alert(condition: Condition, dag_id: str, run_id: str, link: str) -> Alert:
    what = {"dead_letters": "dead letters above the threshold", "watermark_lag": "watermark lagging"}
    return Alert(
        kind=condition.kind,
        title=f"Zuora ETL: {condition.family}.{condition.object}: {what.get(condition.kind, condition.kind)}",
        fields={
            "dag": dag_id,
            "run": run_id,
            "family": condition.family,
            "object": condition.object,
            "condition": condition.detail,
            "log": link,
        },
    )


def _minutes(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


__all__ = ["Condition", "condition_alert", "dead_letter_conditions", "due", "ended", "watermark_lag_conditions"]
