"""A Data Query bulk path for first loads: one export job per object and window instead of ⌈N/99⌉
Object Query pages, staged as the very same raw records.

`bulk_sql` translates Object Query filters (`status.EQ:Posted`, `updatedDate.GE:…Z`, `id.IN:[a,b]`)
into Trino SQL for Zuora's Data Query; `extract_bulk` runs it, streams the CSV result to a local temp
file, and converts every value to the text Object Query would have given for it before writing it
with `staging.PartWriter`, exactly like `pipeline.extract_pages`.

Data Query facts relied on (Zuora's docs, "Overview of Data Query" and "Construct SQL Queries in Data
Query"):

- the engine is Trino 351; column names are Zuora's field names in lower case (`invoiceid`);
- column types are bigint, boolean, date, decimal(18,6), timestamp with time zone and varchar;
- Data Query Live renders timestamps in the tenant's time zone (Zuora Warehouse in America/Los_Angeles);
- Live refuses queries over 10,000,000 input or 500,000 output records: a window over that fails
  (`DataQueryError`) and has to be split; as a guard against a cut result, an export reporting
  exactly the output limit is refused too (`ZuoraDataError`);
- deleted records are left out unless asked for.

Assumptions (not stated by Zuora's docs; the conversion accepts every plausible form):

- datetime columns are selected as `to_iso8601(col)`: ISO-8601 with the zone's offset
  (`2025-11-02T01:30:00.000-07:00`), the only text form that tells the two 01:30 of a DST fall-back
  apart. Trino's plain text form (`2025-03-21 03:24:15.000 America/Los_Angeles`) is accepted too;
- decimal(18,6) values may come as `199.950000` or `199.95`: both become Object Query's JSON number
  text (`199.95`, via a float, as `staging.as_text` writes a JSON number);
- an empty CSV field is a null (CSV cannot tell an empty string from a null).
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from airflow.sdk import ObjectStoragePath

from .catalog import BOOLEAN, DATE, DATETIME, INTEGER, NUMBER, STRING, ZuoraObject
from .conditions import Condition
from .hooks.zuora import DataQueryError, ZuoraDataError, ZuoraHook
from .logfmt import logfmt
from .settings import BULK_WATERMARK_MARGIN, DATA_QUERY_MAX_JOBS
from .sizing import OBJECT_TABLES, run_queries
from .staging import PartWriter
from .windows import Window, parse_instant

log = logging.getLogger(__name__)

# Longest poll interval while the export runs: a multi-million-row export takes minutes, so a few
# seconds between polls costs nothing in latency and keeps the job's API calls to a handful.
BULK_POLL_S = 5.0
# How long to wait for one export: Data Query gives a query one hour per attempt and retries it up to
# three times (four hours in all); past that the job is as good as failed.
BULK_TIMEOUT_S = 4 * 3600.0
# CSV rows converted per batch handed to the PartWriter: bounds the memory of the conversion (the
# writer itself holds at most one part, settings.PART_ROWS rows) whatever the export's size.
BULK_CHUNK_ROWS = 10_000
# Data Query Live's limit on output records: an export that reports exactly this many rows may have
# been cut by the engine, which would lose records silently; such a window must be split.
DATA_QUERY_MAX_OUTPUT_ROWS = 500_000
# How Zuora words a query refused for its output size (matched loosely: the exact text is not
# documented); such a window is exported again in halves.
OUTPUT_LIMIT_ERROR = re.compile(r"output|too many|exceed", re.IGNORECASE)
# Where the result file is streamed before conversion; None is the system's temp dir ($TMPDIR).
BULK_TEMP_DIR: str | None = None

# Data Query table per object: the sizing tables, plus the objects sizing leaves out.
DATA_QUERY_TABLES: dict[str, str] = {**OBJECT_TABLES, "amendments": "amendment", "products": "product"}

_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_OPS = {"EQ": "=", "NE": "<>", "LT": "<", "GT": ">", "LE": "<=", "GE": ">="}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


@dataclass(frozen=True)
class ParentScope:
    """Children whose parent passes the parent's filters: `parent` (e.g. invoices), `key` (the
    child's field naming its parent, e.g. `invoiceId`) and the parent's filters, window included."""

    parent: ZuoraObject
    key: str
    filters: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "filters", tuple(self.filters))


def data_query_table(obj: ZuoraObject) -> str:
    try:
        return DATA_QUERY_TABLES[obj.name]
    except KeyError:
        raise ValueError(f"no Data Query table known for {obj.name}") from None


def _column(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"not a Zuora field name: {name!r}")
    return name.lower()


def _type(obj: ZuoraObject, name: str) -> str:
    """The catalog's type of a field; custom fields (`__c`, tenant configuration) and names the
    catalog does not know are text (Data Query fails the job on a column it does not have)."""
    canonical = obj.field(name)
    return obj.fields[canonical] if canonical else STRING


def quote(text: str) -> str:
    """A SQL string literal: single quotes doubled, so no value can end the literal early."""
    if "\x00" in text:
        raise ValueError("a filter value cannot hold a NUL character")
    return "'" + text.replace("'", "''") + "'"


def _literal(kind: str, value: str, condition: str) -> str:
    """A filter value as a SQL expression of the column's type; ValueError when it is not one."""
    if kind == DATETIME:
        if not re.match(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", value) or not re.search(r"(Z|[+-]\d{2}:?\d{2})$", value):
            raise ValueError(f"{condition}: a datetime filter needs ISO-8601 with 'T' and an offset or Z")
        instant = parse_instant(value)
        spec = "milliseconds" if instant.microsecond else "seconds"
        text = instant.isoformat(timespec=spec).replace("+00:00", "Z")
        return f"from_iso8601_timestamp({quote(text)})"
    if kind == DATE:
        if not _DATE.match(value):
            raise ValueError(f"{condition}: a date filter takes YYYY-MM-DD")
        date.fromisoformat(value)
        return f"from_iso8601_date({quote(value)})"
    if kind in (INTEGER, NUMBER):
        try:
            number = Decimal(value)
        except InvalidOperation:
            raise ValueError(f"{condition}: not a number") from None
        if not number.is_finite():
            raise ValueError(f"{condition}: not a finite number")
        return format(number, "f")
    if kind == BOOLEAN:
        if value.lower() not in ("true", "false"):
            raise ValueError(f"{condition}: a boolean filter takes true or false")
        return value.lower()
    return quote(value)


def _condition_sql(obj: ZuoraObject, table: str, text: str) -> str:
    """One Object Query filter as a SQL predicate on `table`, with Object Query's semantics: EQ, NE,
    IN and SW compare text case-insensitively, `EQ:null` / `NE:null` test for null, NE keeps nulls out."""
    c = Condition.parse(text.strip())
    kind = _type(obj, c.field)
    col = f"{table}.{_column(c.field)}"
    if c.value.strip().lower() == "null":
        if c.op not in ("EQ", "NE"):
            raise ValueError(f"{text}: null only goes with EQ or NE")
        return f"{col} IS {'NOT ' if c.op == 'NE' else ''}NULL"
    text_field = kind == STRING
    if c.op == "SW":
        if not text_field:
            raise ValueError(f"{text}: SW needs a text field")
        pattern = c.value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        return f"lower({col}) LIKE lower({quote(pattern)}) ESCAPE '\\'"
    if c.op == "IN":
        values = c.values
        if not c.value.strip().startswith("[") or not c.value.strip().endswith("]") or not values:
            raise ValueError(f"{text}: IN takes a non-empty list [a,b]")
        if text_field:
            return f"lower({col}) IN ({', '.join(f'lower({quote(v)})' for v in values)})"
        return f"{col} IN ({', '.join(_literal(kind, v, text) for v in values)})"
    if text_field and c.op in ("EQ", "NE"):
        return f"lower({col}) {_OPS[c.op]} lower({quote(c.value)})"
    if kind == BOOLEAN and c.op not in ("EQ", "NE"):
        raise ValueError(f"{text}: a boolean field takes EQ or NE")
    return f"{col} {_OPS[c.op]} {_literal(kind, c.value, text)}"


def _where(obj: ZuoraObject, table: str, filters: Sequence[str]) -> list[str]:
    return [_condition_sql(obj, table, f) for f in filters]


def bulk_sql(obj: ZuoraObject, fields: list[str], filters: list[str], parent: ParentScope | None = None) -> str:
    """The Data Query (Trino) SQL reading `fields` of `obj`'s records that pass `filters` (Object
    Query syntax) and, with `parent`, whose parent passes the parent's filters; oldest updatedDate
    first, then id. Datetime columns are selected as `to_iso8601(col) AS col` (see the module doc);
    every column reference is qualified by its table, so that an alias never shadows a column in
    WHERE or ORDER BY."""
    if not fields:
        raise ValueError("bulk_sql needs at least one field")
    table = data_query_table(obj)
    select = []
    for name in dict.fromkeys(fields):
        col = _column(name)
        ref = f"{table}.{col}"
        select.append(f"to_iso8601({ref}) AS {col}" if _type(obj, name) == DATETIME else f"{ref} AS {col}")
    where = _where(obj, table, filters)
    if parent is not None:
        parent_table = data_query_table(parent.parent)
        if parent_table == table:
            raise ValueError("a parent scope names another object")
        inner = _where(parent.parent, parent_table, parent.filters)
        sub = f"SELECT {parent_table}.id FROM {parent_table}" + (f" WHERE {' AND '.join(inner)}" if inner else "")
        where.append(f"{table}.{_column(parent.key)} IN ({sub})")
    return (
        f"SELECT {', '.join(select)} FROM {table}"
        + (f" WHERE {' AND '.join(where)}" if where else "")
        + f" ORDER BY {table}.updateddate ASC, {table}.id ASC"
    )


# ---------- Data Query text -> Object Query text ----------
def _zone(name: str) -> tzinfo:
    m = _OFFSET.match(name)
    if m:
        delta = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        return timezone(-delta if m.group(1) == "-" else delta) if delta else UTC
    if name in ("UTC", "Z", "GMT"):
        return UTC
    return ZoneInfo(name)


@lru_cache(maxsize=65_536)  # records of one second share a text; ~16 MB at most
def _datetime(text: str, tz: tzinfo | None) -> tuple[str, float] | None:
    """Object Query's text of a Data Query timestamp (second precision, the offset of its zone, `Z`
    at zero) and its epoch seconds; None when the text is no timestamp."""
    raw = text.strip()
    try:
        if raw[10:11] == "T":  # to_iso8601: 2025-03-21T03:24:15.000-07:00 / ...Z
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        else:  # Trino's text form: 2025-03-21 03:24:15.000 America/Los_Angeles
            stamp, _, zone = raw.rpartition(" ")
            moment = datetime.fromisoformat(stamp).replace(tzinfo=_zone(zone))
    except (ValueError, ZoneInfoNotFoundError):
        return None
    if moment.tzinfo is None:
        return None
    if tz is not None:
        moment = moment.astimezone(tz)
    moment = moment.replace(microsecond=0)  # Object Query shows whole seconds
    out = moment.isoformat(timespec="seconds")
    return (out[:-6] + "Z" if out.endswith("+00:00") else out), moment.timestamp()


def _number(text: str) -> str:
    try:
        return json.dumps(float(text))
    except ValueError:
        return text  # kept as received: the mapping's validation quarantines it


def _integer(text: str) -> str:
    try:
        number = Decimal(text)
        return str(int(number)) if number == number.to_integral_value() else text
    except (InvalidOperation, ValueError):
        return text


def _boolean(text: str) -> str:
    low = text.strip().lower()
    return {"true": "true", "false": "false", "1": "true", "0": "false"}.get(low, text)


def converter(kind: str, tz: tzinfo | None = None) -> Callable[[str], str] | None:
    """Data Query CSV text -> Object Query's staged text for a field of this catalog type; None
    means as is (text, dates)."""
    if kind == DATETIME:

        def to_datetime(text: str) -> str:
            got = _datetime(text, tz)
            return got[0] if got else text

        return to_datetime
    return {NUMBER: _number, INTEGER: _integer, BOOLEAN: _boolean}.get(kind)


def extract_bulk(
    hook: ZuoraHook,
    obj: ZuoraObject,
    fields: list[str],
    filters: list[str],
    directory: ObjectStoragePath,
    prefix: str,
    parent: ParentScope | None = None,
    timeout_s: float = BULK_TIMEOUT_S,
    poll_s: float = BULK_POLL_S,
    tz: tzinfo | None = None,
) -> dict:
    """One Data Query export (the records of `obj` passing `filters` and `parent`) into Parquet parts
    of raw text, the same records `pipeline.extract_pages` would stage from Object Query.

    Returns `extract_pages`' manifest keys (`parts`, `rows`, `pages` = 0, `max_updated` in Object
    Query's text form), `api_calls` (the hook's count), `job_id`, and `snapshot`: the ISO time (UTC)
    the export's data is as of, taken as the job's `createdOn` as Zuora reports it (the job reads
    the tenant after it was created, so a watermark of that time re-reads, never skips, a record
    changed while it ran), or the time just before submitting when Zuora gives no `createdOn`.

    `tz` renders datetimes in that zone instead of the one Data Query gave (Live gives the tenant's,
    as Object Query does). A failed, cancelled or timed-out job raises `DataQueryError`; a result
    without a requested column, a malformed row, a record without id or updatedDate, or fewer rows
    than the job reports raise `ZuoraDataError`. The temp file is removed in every case."""
    lower = {f.lower() for f in fields}
    absent = [f for f in ("id", "updatedDate") if f.lower() not in lower]
    if absent:
        raise ValueError(f"extract_bulk needs {' and '.join(absent)} among the fields")
    fields = list(dict.fromkeys(fields))
    sql = bulk_sql(obj, fields, filters, parent)
    before = datetime.now(UTC)
    job_id = hook.submit_query(sql)
    log.info(logfmt("bulk_submitted", object=obj.name, job_id=job_id, fields=len(fields), filters=len(filters),
                    parent=parent.parent.name if parent else None))  # fmt: skip
    job = hook.wait_for_query(job_id, timeout_s, poll_s)
    reported = job.get("outputRows")
    if isinstance(reported, int) and reported >= DATA_QUERY_MAX_OUTPUT_ROWS:
        raise ExportTooLarge(
            f"Data Query job {job_id} for {obj.name} returned {reported} rows, Data Query's output limit: "
            "the export may be cut; split the window"
        )
    snapshot = _snapshot(job.get("createdOn"), before)
    fd, tmp = tempfile.mkstemp(prefix=f"zuora-bulk-{obj.name}-", suffix=".csv", dir=BULK_TEMP_DIR)
    os.close(fd)
    try:
        size = hook.download_query_result_to(job, tmp)
        writer = PartWriter(directory, prefix, fields)
        max_updated = _convert(tmp, obj, fields, writer, job_id, tz)
        writer.flush()
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    if isinstance(reported, int) and reported != writer.rows:
        raise ZuoraDataError(f"Data Query job {job_id} reports {reported} rows, its result file has {writer.rows}")
    log.info(logfmt("bulk_staged", object=obj.name, job_id=job_id, rows=writer.rows, parts=len(writer.parts),
                    bytes=size, newest=max_updated, snapshot=snapshot, api_calls=hook.api_calls))  # fmt: skip
    return {
        "parts": writer.parts,
        "rows": writer.rows,
        "pages": 0,
        "max_updated": max_updated,
        "api_calls": hook.api_calls,
        "snapshot": snapshot,
        "job_id": job_id,
    }


def _snapshot(created_on: object, before: datetime) -> str:
    if isinstance(created_on, str) and created_on.strip():
        try:
            return parse_instant(created_on).isoformat()
        except ValueError:
            log.warning(logfmt("bulk_created_on_unreadable", created_on=created_on))
    return before.isoformat()


def _convert(
    path: str, obj: ZuoraObject, fields: list[str], writer: PartWriter, job_id: str, tz: tzinfo | None
) -> str | None:
    """Stream the CSV at `path` into `writer`, converted; returns the newest updatedDate."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise ZuoraDataError(f"Data Query job {job_id}: the result file is empty (not even a header)")
        position = {name.strip().lower(): i for i, name in enumerate(header)}
        missing = [f for f in fields if f.lower() not in position]
        if missing:
            raise ZuoraDataError(
                f"Data Query job {job_id}: the result has no column for {', '.join(missing)} "
                f"(header: {','.join(header)})"
            )
        columns = [(f, position[f.lower()], converter(_type(obj, f), tz)) for f in fields]
        id_at = next(i for f, i, _ in columns if f.lower() == "id")
        updated_at = next(i for f, i, _ in columns if f.lower() == "updateddate")
        width = len(header)
        newest: tuple[float, str] | None = None
        batch: list[dict] = []
        for line, row in enumerate(reader, start=2):
            if len(row) != width:
                raise ZuoraDataError(f"Data Query job {job_id}: row {line} has {len(row)} fields, the header {width}")
            if not row[id_at] or not row[updated_at]:
                raise ZuoraDataError(f"Data Query job {job_id}: row {line} has no id or updatedDate")
            stamp = _datetime(row[updated_at], tz)
            if stamp is None:
                raise ZuoraDataError(f"Data Query job {job_id}: row {line} has updatedDate {row[updated_at]!r}")
            if newest is None or stamp[1] > newest[0]:
                newest = (stamp[1], stamp[0])
            batch.append({f: (None if not (v := row[i]) else conv(v) if conv else v) for f, i, conv in columns})
            if len(batch) >= BULK_CHUNK_ROWS:
                writer.add(batch)
                batch = []
        if batch:
            writer.add(batch)
    return newest[1] if newest else None


# ---------- windows, children, counts: what the extract and plan steps call ----------
class ExportTooLarge(ZuoraDataError):
    """An export at Data Query's output limit: its window is read again in halves."""


def export_window(
    hook: ZuoraHook,
    obj: ZuoraObject,
    fields: list[str],
    filters: list[str],
    window: Window,
    directory: ObjectStoragePath,
    prefix: str,
    parent: tuple[ZuoraObject, str, list[str]] | None = None,
) -> list[dict]:
    """The records of `obj` updated in `window` (or, with `parent` = (parent object, key, parent's
    filters), the children of the parents updated in it) by export: one job, or, when the result
    reaches Data Query's output limit, the two halves of the window, each split again as needed."""
    if parent is None:
        scoped, scope = [*window.filters(), *filters], None
    else:
        scoped, scope = filters, ParentScope(parent[0], parent[1], (*parent[2], *window.filters()))
    try:
        return [extract_bulk(hook, obj, fields, scoped, directory, prefix, parent=scope)]
    except (ExportTooLarge, DataQueryError) as exc:
        if isinstance(exc, DataQueryError) and not OUTPUT_LIMIT_ERROR.search(str(exc)):
            raise
        halves = window.split(2)
        if len(halves) < 2:
            raise
        log.warning(logfmt("bulk_split", object=obj.name, window=f"{window.to_dict()}", why=str(exc)[:200]))
        reads: list[dict] = []
        for i, half in enumerate(halves):
            reads += export_window(hook, obj, fields, filters, half, directory, f"{prefix}{'ab'[i]}", parent)
        return reads


def export_windows(
    make_hook: Callable[[], ZuoraHook],
    obj: ZuoraObject,
    fields: list[str],
    filters: list[str],
    windows: list[Window],
    directory: ObjectStoragePath,
    prefix: str,
    parent: tuple[ZuoraObject, str, list[str]] | None = None,
) -> dict:
    """Every window by export (at most DATA_QUERY_MAX_JOBS jobs at once), as one extract manifest.

    Its `max_updated` (the watermark's next value) stops BULK_WATERMARK_MARGIN before the earliest
    export's snapshot: Data Query reads a copy that may trail the tenant, and the next incremental
    run reads that margin again through Object Query. `bulk` lists the jobs, the snapshot and the
    parts the exports wrote."""
    hook = make_hook()

    def one(i: int, window: Window) -> list[dict]:
        return export_window(hook, obj, fields, filters, window, directory, f"{prefix}{i:02d}", parent)

    workers = max(1, min(DATA_QUERY_MAX_JOBS, len(windows)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="bulk") as pool:
        reads = [m for ms in pool.map(one, range(len(windows)), windows) for m in ms]
    snapshot = min((parse_instant(m["snapshot"]) for m in reads), default=datetime.now(UTC))
    newest = max((m["max_updated"] for m in reads if m["max_updated"]), key=parse_instant, default=None)
    parts = [p for m in reads for p in m["parts"]]
    bulk = {"jobs": [m["job_id"] for m in reads], "snapshot": snapshot.isoformat(), "parts": parts}
    manifest = {
        "parts": parts,
        "rows": sum(m["rows"] for m in reads),
        "pages": 0,
        "max_updated": watermark_after_export(newest, snapshot),
        "api_calls": hook.api_calls,
        "bulk": bulk,
    }
    return manifest


def watermark_after_export(newest: str | None, snapshot: datetime) -> str | None:
    """The newest updatedDate an export read, but never later than its snapshot less
    BULK_WATERMARK_MARGIN (see `export_windows`)."""
    if newest is None:
        return None
    limit = snapshot - BULK_WATERMARK_MARGIN
    return newest if parse_instant(newest) <= limit else limit.isoformat()


def count_window(
    hook: ZuoraHook,
    obj: ZuoraObject,
    filters: list[str],
    window: Window,
    children: Sequence[tuple[ZuoraObject, str, list[str]]] = (),
) -> tuple[int, int, datetime | None, tuple[tuple[int, int], ...]]:
    """What Data Query counts in `window`: `obj`'s records passing `filters`, the total with each
    child's records (child object, key naming the parent, child's filters) whose parent is among
    them, the oldest updatedDate (to the minute), and `obj`'s records per minute ((epoch minute,
    records), one row per minute that has any). A few calls per job, whatever the volume."""
    table = data_query_table(obj)
    where = _where(obj, table, [*window.filters(), *filters])
    own_where = f" WHERE {' AND '.join(where)}" if where else ""
    minute = f"CAST(floor(to_unixtime({table}.updateddate) / 60) AS bigint)"
    sqls = [f"SELECT {minute} AS bucket, count(*) AS records FROM {table}{own_where} GROUP BY 1"]
    for child, key, child_filters in children:
        child_table = data_query_table(child)
        inner = [*_where(child, child_table, child_filters),
                 f"{child_table}.{_column(key)} IN (SELECT {table}.id FROM {table}{own_where})"]  # fmt: skip
        sqls.append(f"SELECT count(*) AS records FROM {child_table} WHERE {' AND '.join(inner)}")
    # The object's count and its children's are independent jobs: side by side, the plan waits for
    # the slowest instead of their sum (a Data Query job takes seconds to minutes in Zuora).
    answers = list(run_queries(hook, dict(enumerate(sqls)), _count_rows).values())
    for i, rows in enumerate(answers[1:], start=1):
        if len(rows) != 1:
            raise ZuoraDataError(f"Data Query count of {obj.name}, query {i + 1}: {len(rows)} result rows, not 1")
    try:  # a bigint, or a double's text form (2.9892E7) if Zuora keeps floor()'s type
        minutes = tuple(sorted((int(float(r["bucket"])), int(r["records"])) for r in answers[0]))
    except (KeyError, ValueError) as exc:
        raise ZuoraDataError(f"Data Query count of {obj.name}: unreadable result ({exc})") from exc
    records = sum(n for _, n in minutes)
    first = datetime.fromtimestamp(minutes[0][0] * 60, UTC) if minutes else None
    return records, records + sum(int(a[0]["records"]) for a in answers[1:]), first, minutes


def _count_rows(hook: ZuoraHook, job: dict) -> list[dict[str, str]]:
    """A count job's result rows, column names lower-cased and stripped."""
    lines = hook.download_query_result(job).splitlines()
    return [{k.strip().lower(): v for k, v in r.items()} for r in csv.DictReader(lines)]
