"""Watermarks and windows as plain values.

A window is `[lo, hi)` in UTC, second precision (Zuora's updatedDate resolution). `lo` is None for
the whole history. Sync, backfill, replay and parallel slices all pass windows around as dicts.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from .settings import DEFAULT_OVERLAP_S, DEFAULT_SETTLE_S, FIRST_LOAD_SPAN_DAYS

WHOLE_HISTORY_LO = datetime(1970, 1, 1, tzinfo=UTC)  # used when a filter must be present
# A window from the start of history is split as if it began here (Zuora's oldest tenants date from
# the late 2000s); its first slice still reads everything before.
HISTORY_SPLIT_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)


def parse_instant(text: str | datetime | date) -> datetime:
    """An aware UTC datetime from an ISO date or datetime; naive input is taken as UTC."""
    if isinstance(text, datetime):
        value = text
    elif isinstance(text, date):
        value = datetime(text.year, text.month, text.day)
    else:
        raw = text.strip()
        if " " in raw and "T" not in raw:
            raw = raw.replace(" ", "T", 1)
        try:
            value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"not an ISO-8601 date or datetime: {text!r}") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def zuora_instant(value: datetime) -> str:
    """Zuora filter form: `2025-03-13T21:30:46Z` (no `+` to encode, no space to be ignored)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def hwm_variable(family: str, obj: str) -> str:
    return f"zuora_hwm__{family}__{obj}"


@dataclass(frozen=True)
class Window:
    lo: datetime | None
    hi: datetime

    def __post_init__(self) -> None:
        if self.lo is not None and self.lo >= self.hi:
            raise ValueError(f"empty window: {self.lo.isoformat()} >= {self.hi.isoformat()}")

    def is_long(self, days: int = FIRST_LOAD_SPAN_DAYS) -> bool:
        """Whether the window spans more than `days` (or starts at the beginning of history)."""
        return self.lo is None or (self.hi - self.lo).total_seconds() > days * 86400

    def filters(self) -> list[str]:
        lo = self.lo or WHOLE_HISTORY_LO
        return [f"updatedDate.GE:{zuora_instant(lo)}", f"updatedDate.LT:{zuora_instant(self.hi)}"]

    def split_origin(self, first: datetime | None = None) -> datetime:
        """Where a window from the start of history is taken to begin when split: its first
        record's updatedDate when known, else HISTORY_SPLIT_ORIGIN (its first slice still reads
        everything before)."""
        return self.lo or (first.replace(microsecond=0) if first and first < self.hi else HISTORY_SPLIT_ORIGIN)

    def split(self, n: int, first: datetime | None = None) -> list[Window]:
        """n equal slices for parallel extraction, on whole seconds: `[lo, b1), [b1, b2), ...`, so
        that records of one second, however many, fall in exactly one slice."""
        if n <= 1:
            return [self]
        lo = self.split_origin(first)
        step = (self.hi - lo) / n
        bounds = [lo + step * i for i in range(n)] + [self.hi]
        bounds = [b.replace(microsecond=0) for b in bounds]
        slices = [Window(a, b) for a, b in itertools.pairwise(bounds) if a < b]
        if self.lo is None:
            slices[0] = Window(None, slices[0].hi)
        return slices

    def split_by_counts(self, minutes: Sequence[tuple[int, int]], n: int) -> list[Window]:
        """About n slices holding equal numbers of records, by a count of the window's records per
        minute ((epoch minute, records), e.g. from Data Query), on whole seconds. A minute holding
        more than one slice's share (a bill run writes thousands of invoices a minute) is cut into
        equal parts of that minute: Zuora's cursor reads a slice one page after another, so a slice
        of a burst would otherwise hold up the run. Without counts: `split(n)`."""
        total = sum(c for _, c in minutes)
        if n <= 1 or total <= 0:
            return self.split(n)
        share = total / n
        starts: list[int] = []  # epoch seconds where a slice begins
        held = 0.0
        for minute, records in sorted(minutes):
            at = minute * 60
            if records > share:  # a burst: a slice ends before it, it gets its own, and one starts after
                parts = min(60, math.ceil(records / share))
                starts += [at + 60 * k // parts for k in range(parts)] + [at + 60]
                held = 0.0
                continue
            if held and held + records > share:
                starts.append(at)
                held = 0.0
            held += records
        lo, hi = self.lo.timestamp() if self.lo else float("-inf"), self.hi.timestamp()
        cuts = [datetime.fromtimestamp(t, UTC) for t in sorted(set(starts)) if lo < t < hi]
        return [Window(a, b) for a, b in itertools.pairwise([self.lo, *cuts, self.hi])]

    def to_dict(self) -> dict[str, str | None]:
        return {"lo": self.lo.isoformat() if self.lo else None, "hi": self.hi.isoformat()}

    @classmethod
    def from_dict(cls, d: dict) -> Window:
        return cls(parse_instant(d["lo"]) if d.get("lo") else None, parse_instant(d["hi"]))


def floor_second(value: datetime) -> datetime:
    return value.replace(microsecond=0)


def incremental_window(
    watermark: str | None,
    initial: str | None,
    now: datetime,
    overlap_s: int = DEFAULT_OVERLAP_S,
    settle_s: int = DEFAULT_SETTLE_S,
) -> Window | None:
    """The next window of a scheduled sync; None when nothing can be read yet (hi <= lo)."""
    hi = floor_second(now - timedelta(seconds=settle_s))
    if watermark:
        lo: datetime | None = parse_instant(watermark) - timedelta(seconds=overlap_s)
    elif initial:
        lo = parse_instant(initial)
    else:
        lo = None
    if lo is not None and lo >= hi:
        return None
    return Window(lo, hi)


def range_window(start: str, end: str | None, now: datetime) -> Window:
    """A backfill window from the run's `start`/`end` params (dates or datetimes)."""
    lo = parse_instant(start)
    hi = parse_instant(end) if end else floor_second(now)
    if len(str(end or "")) == 10:  # a bare end date means through the end of that day
        hi += timedelta(days=1)
    if lo >= hi:
        raise ValueError(f"start {start} must be before end {end}")
    return Window(lo, hi)
