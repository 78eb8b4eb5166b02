"""Data Query jobs: Zuora's asynchronous SQL, run here on the tenant's SQLite file.

Zuora's engine is Trino; the handful of Trino functions the sizing SQL uses (`format_datetime`
with Joda patterns, `year`, `concat`) are registered on SQLite so that the same SQL runs unchanged.
"""

from __future__ import annotations

import csv
import re
import sqlite3
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from .store import Store

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


class DataQuery:
    def __init__(self, store: Store, files_dir: Path, delay_s: float = 0.2) -> None:
        self.store, self.files_dir, self.delay_s = store, files_dir, delay_s
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
            with open(self.files_dir / f"{job.id}.csv", "w", newline="", encoding="utf-8") as fh:
                out = csv.writer(fh)
                out.writerow([d[0] for d in cur.description])
                for row in cur:
                    out.writerow(row)
                    job.rows += 1
            conn.close()
            job.status = "completed"
        except sqlite3.Error as exc:
            job.status, job.error = "failed", f"Query failed: {exc}"
        job.updated = time.time()

    def file(self, name: str) -> Path | None:
        path = self.files_dir / name
        return path if re.fullmatch(r"[0-9a-f-]{36}\.csv", name) and path.exists() else None
