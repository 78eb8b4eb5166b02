"""Tenant time zone: how Zuora renders datetimes and how it reads them in filters."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")
# ISO-8601 with a `T`; seconds and offset optional (no offset means the tenant's zone).
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:?\d{2})?$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_tz(text: str) -> tzinfo:
    """`-08:00` gives a fixed offset; an IANA name (`America/Los_Angeles`) follows daylight saving."""
    m = _OFFSET.match(text.strip())
    if m:
        sign = -1 if m.group(1) == "-" else 1
        delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        return UTC if not delta else timezone(sign * delta)
    return ZoneInfo(text.strip())


class TenantClock:
    def __init__(self, tz: tzinfo) -> None:
        self.tz = tz
        self.render = lru_cache(maxsize=262_144)(self._render)

    def _render(self, epoch: int) -> str:
        text = datetime.fromtimestamp(epoch, self.tz).isoformat(timespec="seconds")
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    def parse(self, text: str) -> float:
        """Epoch seconds of an ISO datetime; raises ValueError for anything else."""
        if not DATETIME_RE.match(text):
            raise ValueError(text)
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=self.tz)
        return value.timestamp()


def zone_id(tz: tzinfo) -> str:
    """How Trino names a time zone in a `timestamp with time zone` value: the IANA name
    (`America/Los_Angeles`), `UTC`, or a fixed offset (`-08:00`)."""
    key = getattr(tz, "key", None)
    if key:
        return key
    offset = datetime.now(tz).utcoffset() or timedelta(0)
    if not offset:
        return "UTC"
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"
