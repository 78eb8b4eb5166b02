"""Data Query jobs: Zuora's asynchronous SQL, run here on the tenant's SQLite file.

Zuora's engine is Trino (351); the handful of Trino functions the project's SQL uses (`format_datetime`
with Joda patterns, `year`, `concat`, `from_iso8601_timestamp`, `from_iso8601_date`, `to_iso8601`,
`to_unixtime`, `floor`, a Unicode `lower`) are registered on SQLite so that the same SQL runs unchanged.

The result file is CSV as Zuora writes it, column names lower-case (Zuora's column names), and each
value in the text form of its Data Query column type (`SHOW COLUMNS` types: bigint, boolean, date,
decimal(18,6), timestamp with time zone, varchar; "Construct SQL Queries in Data Query", Zuora docs):

- timestamp with time zone: Trino's text form, in the tenant's zone for Data Query Live ("Live: uses
  tenant's preferred timezone", "Overview of Data Query"): `2025-03-21 03:24:15.000 America/Los_Angeles`;
- decimal(18,6): six fraction digits, `199.950000` (assumed: Trino's text form of the type; Zuora's
  docs only show `230.0` in an example, so clients should accept both);
- boolean: `true` / `false`; bigint: digits; date: `2025-03-21`; null: an empty field.

SQLite stores datetimes as epoch seconds, booleans as 0/1 and decimals as REAL: a column is rendered
by the type of the field it is named after, in the tables the query reads, when its value is still
stored-form (an expression already turned into text, `to_iso8601(updateddate) AS updateddate`, is not).
"""

from __future__ import annotations

import csv
import math
import re
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from .schema import BOOL, DATETIME, INT, NUM, OBJECTS
from .store import Store
from .timefmt import zone_id

_JODA = {
    "yyyy": "%Y",
    "YYYY": "%Y",
    "yy": "%y",
    "YY": "%y",
    "MM": "%m",
    "dd": "%d",
    "HH": "%H",
    "mm": "%M",
    "ss": "%S",
}


def _as_datetime(value: object, store: Store) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, store.clock.tz)
    text = str(value)
    if len(text) == 10:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def register_functions(conn: sqlite3.Connection, store: Store) -> None:
    def format_datetime(value: object, pattern: str) -> str | None:
        moment = _as_datetime(value, store)
        if moment is None:
            return None
        fmt = re.sub(r"([A-Za-z])\1*", lambda m: _JODA.get(m.group(0), m.group(0)), pattern)
        return moment.strftime(fmt)

    def part(attr: str):
        return lambda value: getattr(_as_datetime(value, store), attr) if value is not None else None

    conn.create_function("format_datetime", 2, format_datetime, deterministic=True)
    conn.create_function("year", 1, part("year"), deterministic=True)
    conn.create_function("month", 1, part("month"), deterministic=True)
    conn.create_function("day", 1, part("day"), deterministic=True)
    conn.create_function("concat", -1, lambda *a: "".join("" if v is None else str(v) for v in a))

    def from_iso8601_timestamp(text: object) -> float | int | None:
        if text is None:
            return None
        value = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=store.clock.tz)
        stamp = value.timestamp()
        return int(stamp) if stamp == int(stamp) else stamp

    def from_iso8601_date(text: object) -> str | None:
        return None if text is None else date.fromisoformat(str(text)).isoformat()

    def to_iso8601(value: object) -> str | None:
        """A timestamp with time zone as ISO-8601 with its offset and milliseconds (Trino's form; `Z`
        at a zero offset, as java.time writes it); a date as is."""
        if value is None or isinstance(value, str):
            return value
        text = datetime.fromtimestamp(value, store.clock.tz).isoformat(timespec="milliseconds")
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    def to_unixtime(value: object) -> float | None:
        moment = _as_datetime(value, store)
        return None if moment is None else moment.timestamp()

    conn.create_function("to_unixtime", 1, to_unixtime, deterministic=True)
    conn.create_function("floor", 1, lambda v: None if v is None else math.floor(v), deterministic=True)
    conn.create_function("from_iso8601_timestamp", 1, from_iso8601_timestamp, deterministic=True)
    conn.create_function("from_iso8601_date", 1, from_iso8601_date, deterministic=True)
    conn.create_function("to_iso8601", 1, to_iso8601, deterministic=True)
    # Trino's lower() folds every letter; SQLite's own only ASCII.
    conn.create_function("lower", 1, lambda v: v.lower() if isinstance(v, str) else v, deterministic=True)


def column_types(query: str) -> dict[str, str]:
    """Column name -> emulator type, from the fields of the tables the query names (first named wins)."""
    named = []
    for spec in OBJECTS.values():
        m = re.search(rf"\b{spec.data_query_table}\b", query, re.IGNORECASE) if spec.data_query_table else None
        if m:
            named.append((m.start(), spec))
    types: dict[str, str] = {}
    for _, spec in sorted(named, key=lambda x: x[0]):
        for name, kind in spec.fields:
            types.setdefault(name.lower(), kind)
    return types


def renderer(kind: str | None, store: Store):
    """The CSV text of a stored value of this type, as Zuora's Data Query writes that column type."""
    tz = store.clock.tz
    zone = zone_id(tz)

    def stamp(v):
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return f"{datetime.fromtimestamp(v, tz).strftime('%Y-%m-%d %H:%M:%S')}.{int(v * 1000) % 1000:03d} {zone}"
        return v

    def boolean(v):
        return ("true" if v else "false") if isinstance(v, int) else v

    def decimal(v):
        return f"{v:.6f}" if isinstance(v, (int, float)) else v

    def bigint(v):
        return str(int(v)) if isinstance(v, (int, float)) else v

    return {DATETIME: stamp, BOOL: boolean, NUM: decimal, INT: bigint}.get(kind or "")


class OutputLimitExceeded(Exception):
    pass


@dataclass
class Job:
    id: str
    query: str
    output_format: str
    compression: str
    created: float = field(default_factory=time.time)
    status: str = "accepted"
    rows: int = 0
    error: str | None = None
    updated: float = field(default_factory=time.time)

    def view(self, files_url: str) -> dict:
        def stamp(t):
            return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds")

        return {
            "id": self.id,
            "query": self.query,
            "queryStatus": self.status,
            "outputFormat": self.output_format,
            "compression": self.compression,
            "createdOn": stamp(self.created),
            "updatedOn": stamp(self.updated),
            "outputRows": self.rows,
            "processingTime": int((self.updated - self.created) * 1000),
            "errorMessage": self.error,
            "dataFile": f"{files_url}/{self.id}.csv" if self.status == "completed" else None,
        }


# Data Query Live's limit on a query's output records ("Overview of Data Query"): a query returning
# more fails.
MAX_OUTPUT_ROWS = 500_000


class DataQuery:
    def __init__(self, store: Store, files_dir: Path, delay_s: float = 0.2, max_output_rows: int = MAX_OUTPUT_ROWS):
        self.store, self.files_dir, self.delay_s = store, files_dir, delay_s
        self.max_output_rows = max_output_rows
        self.files_dir.mkdir(parents=True, exist_ok=True)
        self.jobs: dict[str, Job] = {}

    def submit(self, query: str, output_format: str = "CSV", compression: str = "NONE") -> Job:
        job = Job(str(uuid.uuid4()), query, output_format, compression)
        self.jobs[job.id] = job
        threading.Thread(target=self._run, args=(job,), daemon=True).start()
        return job

    def _run(self, job: Job) -> None:
        time.sleep(self.delay_s)  # a job is never done at once: clients must poll
        job.status, job.updated = "in_progress", time.time()
        try:
            conn = self.store.read_only()
            register_functions(conn, self.store)
            cur = conn.execute(job.query)
            names = [d[0].lower() for d in cur.description]  # Zuora's column names are lower-case
            types = column_types(job.query)
            renders = [(i, r) for i, name in enumerate(names) if (r := renderer(types.get(name), self.store))]
            with open(self.files_dir / f"{job.id}.csv", "w", newline="", encoding="utf-8") as fh:
                out = csv.writer(fh)
                out.writerow(names)
                for row in cur:
                    if renders:
                        row = list(row)
                        for i, render in renders:
                            if row[i] is not None:
                                row[i] = render(row[i])
                    out.writerow(row)
                    job.rows += 1
                    if job.rows > self.max_output_rows:
                        raise OutputLimitExceeded(
                            f"Query failed: the query returns more than {self.max_output_rows} records, "
                            "the output limit of Data Query"
                        )
            conn.close()
            job.status = "completed"
        except sqlite3.Error as exc:
            job.status, job.error = "failed", f"Query failed: {exc}"
        except OutputLimitExceeded as exc:
            job.status, job.error, job.rows = "failed", str(exc), 0
        except Exception as exc:  # a job never stays in_progress forever
            job.status, job.error = "failed", f"Query failed: {type(exc).__name__}: {exc}"
        job.updated = time.time()

    def file(self, name: str) -> Path | None:
        path = self.files_dir / name
        return path if re.fullmatch(r"[0-9a-f-]{36}\.csv", name) and path.exists() else None
