"""Sizing: how much the sync moves and stores, measured with Zuora's Data Query.

Three measurements, each a batch of Data Query jobs (at most DATA_QUERY_MAX_JOBS running at once):

1. records per created month, per table (`include/sql/<table>.sql`, the SQL of Zuora's guide), kept in
   the state table `zuora_etl_sizing` (`run_id`, `object`, `month`, `records`);
2. records per created day in the busiest month (by the transfer formula): the first-of-month peak;
3. the CSV size of each table's full-field export of its own busiest month: bytes per record.

The estimates are pure functions over plain values (below the measurements); sizing_report.py
turns them into the report. Months are as Zuora's Data Query formats `createddate`.
"""

from __future__ import annotations

import calendar
import csv
import io
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import sqlalchemy as sa

from .db import create_tables, engine_for
from .hooks.zuora import MAX_PAGE_SIZE, ZuoraHook
from .settings import DATA_QUERY_MAX_JOBS, DATA_QUERY_POLL_S, DATA_QUERY_TIMEOUT_S, STATE_CONN_ID, include_dir

# Zuora's transfer estimate (ZUORA_API.md "Data Query"): an account travels twice (account and its
# contact), every other counted object once; objects outside the formula are not part of the estimate.
TRANSFER_WEIGHTS: dict[str, int] = {
    "account": 2, "orderlineitem": 1, "orderaction": 1, "subscription": 1, "rateplan": 1, "rateplancharge": 1,
    "rateplanchargetier": 1, "invoice": 1, "invoiceitem": 1,
}  # fmt: skip
# The growth rate is fitted on at most this many of the latest complete months: a year holds each
# season once and leaves out a young tenant's ramp-up, which would otherwise pass for growth.
FIT_MONTHS = 12
# Without the tenant's time zone (connection extra `timezone`), a month counts as complete (fitted, a
# busiest month) once it has ended in every zone: Data Query buckets by the tenant's zone, which may
# trail UTC by up to 12 h (UTC-12), and the @monthly run starts at 00:00 UTC on the 1st.
MONTH_SETTLE = timedelta(hours=12)
# The sync's family objects and the Data Query table each reads (the sizing SQL file's name).
OBJECT_TABLES: dict[str, str] = {
    "accounts": "account", "contacts": "contact", "subscriptions": "subscription", "rate_plans": "rateplan",
    "rate_plan_charges": "rateplancharge", "rate_plan_charge_tiers": "rateplanchargetier", "orders": "orders",
    "order_actions": "orderaction", "order_line_items": "orderlineitem", "invoices": "invoice",
    "invoice_items": "invoiceitem", "payments": "payment", "refunds": "refund", "credit_memos": "creditmemo",
    "credit_memo_items": "creditmemoitem", "debit_memos": "debitmemo", "debit_memo_items": "debitmemoitem",
}  # fmt: skip
# Documents per marking call: POST /v1/action/update takes 50; a memo takes one PUT each.
ACTION_PER_CALL = 50
MEMO_PER_CALL = 1

_TABLE = re.compile(r"^[a-z]+$")
_MONTH = re.compile(r"^\d{4}-\d{2}$")
_MONTH_EXPR = "concat(format_datetime(createddate,'YYYY'),'-',format_datetime(createddate,'MM'))"

metadata = sa.MetaData()
sizing_table = sa.Table(
    "zuora_etl_sizing",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("object", sa.String(64), primary_key=True),  # Zuora's Data Query table name
    sa.Column("month", sa.String(7), primary_key=True),  # YYYY-MM
    sa.Column("records", sa.Integer, nullable=False),
)


class MonthlyManifest(TypedDict):
    """What `count_by_month` hands on: the counts themselves are in `zuora_etl_sizing`."""

    run_id: str
    tables: list[str]
    months: list[str]
    complete_months: list[str]
    busiest_month: str | None  # the complete month with the largest transfer estimate
    busiest_by_table: dict[str, str]  # each table's complete month with the most records
    rows: int
    limit_per_minute: int | None  # the tenant's RateLimit-Limit header
    jobs: int


class DaysManifest(TypedDict):
    month: str | None
    days: dict[str, dict[str, int]]  # table -> day of month ("01".."31") -> records
    jobs: int


class Export(TypedDict):
    month: str
    bytes: int


class ExportsManifest(TypedDict):
    exports: dict[str, Export]  # table -> its busiest month's full-field CSV export
    jobs: int


# ---------- the SQL ----------
def sql_dir() -> Path:
    return include_dir() / "sql"


def sizing_sql(directory: Path | None = None) -> dict[str, str]:
    """Table -> its sizing SQL (`include/sql/<table>.sql`): the tables in scope are the files there."""
    found = {p.stem: p.read_text(encoding="utf-8") for p in sorted((directory or sql_dir()).glob("*.sql"))}
    bad = [t for t in found if not _TABLE.match(t)]
    if bad:
        raise ValueError(f"sizing SQL files must be named after a Data Query table (a-z only): {bad}")
    return found


def days_sql(table: str, month: str) -> str:
    """Records of `table` per created day of `month`, bucketed exactly as the monthly SQL does."""
    _check(table, month)
    return (f"SELECT format_datetime(createddate,'dd') day, count(*) FROM {table} "
            f"WHERE {_MONTH_EXPR} = '{month}' GROUP BY 1 ORDER BY 1")  # fmt: skip


def export_sql(table: str, month: str) -> str:
    """Every field of every `table` record created in `month`: the export whose size is measured."""
    _check(table, month)
    return f"SELECT * FROM {table} WHERE {_MONTH_EXPR} = '{month}'"


def _check(table: str, month: str) -> None:
    if not _TABLE.match(table) or not _MONTH.match(month):
        raise ValueError(f"not a Data Query table and month: {table!r}, {month!r}")


def parse_counts(csv_text: str) -> dict[str, int]:
    """A two-column result (key, count) as a dict; the header row is skipped."""
    rows = list(csv.reader(io.StringIO(csv_text)))
    return {key: int(float(n)) for key, n in rows[1:] if key}


# ---------- running Data Query ----------
# One bound for the whole task process: the plan counts several objects in threads, each with its
# children's jobs, and together they still run at most DATA_QUERY_MAX_JOBS jobs at once.
_JOB_SLOTS = threading.BoundedSemaphore(DATA_QUERY_MAX_JOBS)


def run_queries(hook: ZuoraHook, sqls: Mapping[str, str], read: Callable[[ZuoraHook, dict], object]) -> dict:
    """Run every SQL (key -> SQL) as a Data Query job, at most DATA_QUERY_MAX_JOBS at once in this
    process, whoever calls (Zuora runs a few per tenant and refuses the rest); `read(hook, job)` turns
    each completed job into a value."""

    def one(sql: str) -> object:
        with _JOB_SLOTS:
            job = hook.wait_for_query(hook.submit_query(sql), DATA_QUERY_TIMEOUT_S, DATA_QUERY_POLL_S)
            return read(hook, job)

    with ThreadPoolExecutor(max_workers=DATA_QUERY_MAX_JOBS, thread_name_prefix="data-query") as pool:
        futures = {key: pool.submit(one, sql) for key, sql in sqls.items()}
        try:
            return {key: f.result() for key, f in futures.items()}
        except BaseException:
            for f in futures.values():
                f.cancel()  # jobs not yet submitted are not; those running end on their own
            raise


def counts_of(hook: ZuoraHook, job: dict) -> dict[str, int]:
    return parse_counts(hook.download_query_result(job))


def size_of(hook: ZuoraHook, job: dict) -> int:
    return hook.query_result_size(job)


def measure_months(hook: ZuoraHook, engine: sa.Engine, run_id: str, now: datetime) -> MonthlyManifest:
    """Run every table's sizing SQL; replace the run's rows in `zuora_etl_sizing`."""
    sqls = sizing_sql()
    counts = run_queries(hook, sqls, counts_of)
    rows = save_counts(engine, run_id, counts)
    months = sorted({m for by in counts.values() for m in by})
    zone = tenant_zone(hook.get_connection(hook.zuora_conn_id).extra_dejson.get("timezone"))
    complete = complete_months(months, now, zone)
    return MonthlyManifest(
        run_id=run_id,
        tables=sorted(sqls),
        months=months,
        complete_months=complete,
        busiest_month=busiest(transfer_by_month(counts, complete)),
        busiest_by_table={t: m for t, by in counts.items() if (m := busiest({k: by.get(k, 0) for k in complete}))},
        rows=rows,
        limit_per_minute=_first_int(hook.last_headers.get("RateLimit-Limit")),
        jobs=len(sqls),
    )


def measure_days(hook: ZuoraHook, months: MonthlyManifest) -> DaysManifest:
    """Records per created day of the busiest month, per table: the first-of-month peak, measured."""
    month = months["busiest_month"]
    if month is None:
        return DaysManifest(month=None, days={}, jobs=0)
    sqls = {t: days_sql(t, month) for t in months["tables"]}
    days = run_queries(hook, sqls, counts_of)
    return DaysManifest(month=month, days={t: {d.zfill(2): n for d, n in by.items()} for t, by in days.items()},
                        jobs=len(sqls))  # fmt: skip


def measure_exports(hook: ZuoraHook, months: MonthlyManifest) -> ExportsManifest:
    """The CSV size of each table's full-field export of its own busiest month (streamed, counted)."""
    busiest_by_table = months["busiest_by_table"]
    sizes = run_queries(hook, {t: export_sql(t, m) for t, m in busiest_by_table.items()}, size_of)
    exports = {t: Export(month=busiest_by_table[t], bytes=int(n)) for t, n in sizes.items()}
    return ExportsManifest(exports=exports, jobs=len(exports))


def _first_int(value: object) -> int | None:
    match = re.match(r"\s*(\d+)", str(value)) if value is not None else None
    return int(match.group(1)) if match else None


# ---------- the state table ----------
def state_engine(conn_id: str = STATE_CONN_ID) -> sa.Engine:
    engine = engine_for(conn_id)
    create_tables(engine, sizing_table)
    return engine


def save_counts(engine: sa.Engine, run_id: str, counts: Mapping[str, Mapping[str, int]]) -> int:
    """Replace the run's rows with `counts` (table -> month -> records): a rerun leaves only its own."""
    rows = [
        {"run_id": run_id, "object": t, "month": m, "records": n} for t, by in counts.items() for m, n in by.items()
    ]
    with engine.begin() as conn:
        conn.execute(sizing_table.delete().where(sizing_table.c.run_id == run_id))
        if rows:
            conn.execute(sizing_table.insert(), rows)
    return len(rows)


def load_counts(engine: sa.Engine, run_id: str) -> dict[str, dict[str, int]]:
    query = sa.select(sizing_table.c.object, sizing_table.c.month, sizing_table.c.records).where(
        sizing_table.c.run_id == run_id
    )
    counts: dict[str, dict[str, int]] = {}
    with engine.connect() as conn:
        for table, month, records in conn.execute(query.order_by(sizing_table.c.object, sizing_table.c.month)):
            counts.setdefault(table, {})[month] = records
    return counts


# ---------- pure estimates ----------
def month_range(first: str, last: str) -> list[str]:
    """Every month from `first` to `last` (YYYY-MM), both included."""
    y, m = map(int, first.split("-"))
    out = []
    while f"{y:04d}-{m:02d}" <= last:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def add_months(month: str, n: int) -> str:
    y, m = map(int, month.split("-"))
    y, m = divmod(y * 12 + m - 1 + n, 12)
    return f"{y:04d}-{m + 1:02d}"


def days_in(month: str) -> int:
    y, m = map(int, month.split("-"))
    return calendar.monthrange(y, m)[1]


def tenant_zone(text: str | None) -> tzinfo | None:
    """The tenant's time zone from the connection's extra `timezone` (`-08:00` or an IANA name such as
    `America/Los_Angeles`); None when unset or not a zone."""
    text = (text or "").strip()
    if not text:
        return None
    m = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", text)
    if m:
        offset = timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        return timezone(-offset if m.group(1) == "-" else offset)
    try:
        return ZoneInfo(text)
    except (ValueError, ZoneInfoNotFoundError):
        return None


def complete_months(months: Iterable[str], now: datetime, tz: tzinfo | None = None) -> list[str]:
    """The months over by `now`: in the tenant's zone `tz` when known (Data Query buckets by it), else
    once they ended in every zone (see MONTH_SETTLE)."""
    current = now.astimezone(tz).strftime("%Y-%m") if tz else (now.astimezone(UTC) - MONTH_SETTLE).strftime("%Y-%m")
    return sorted(m for m in months if m < current)


def transfer_estimate(records: Mapping[str, float]) -> float:
    """Zuora's formula: 2 * accounts + order line items + order actions + subscriptions + rate plans
    + rate plan charges + rate plan charge tiers + invoices + invoice items (table -> new records)."""
    return sum(weight * records.get(table, 0) for table, weight in TRANSFER_WEIGHTS.items())


def transfer_by_month(counts: Mapping[str, Mapping[str, int]], months: Iterable[str]) -> dict[str, float]:
    return {m: transfer_estimate({t: by.get(m, 0) for t, by in counts.items()}) for m in months}


def busiest(values: Mapping[str, float]) -> str | None:
    """The key with the largest value (the earliest on a tie); None when all are zero or none."""
    top = max(values.values(), default=0)
    return next((k for k in sorted(values) if values[k] == top), None) if top > 0 else None


@dataclass(frozen=True)
class Growth:
    """value(month index t) = level * (1 + rate)^t, t = 0 at the first fitted month."""

    level: float
    rate: float  # compound monthly growth
    months_fitted: int

    def at(self, t: float) -> float:
        return self.level * (1 + self.rate) ** t


def fit_growth(values: Sequence[float]) -> Growth:
    """Least squares of log(value) on the month index (consecutive months), zeros left out: a
    compound monthly growth rate. Fewer than two positive months: no growth, their mean."""
    points = [(t, math.log(v)) for t, v in enumerate(values) if v > 0]
    if len(points) < 2:
        return Growth(level=sum(values) / len(values) if values else 0.0, rate=0.0, months_fitted=len(points))
    t, y = np.array([p[0] for p in points], float), np.array([p[1] for p in points], float)
    slope, intercept = np.polyfit(t, y, 1)
    return Growth(level=float(math.exp(intercept)), rate=float(math.expm1(slope)), months_fitted=len(points))


def forecast(series: Mapping[str, float], complete: Sequence[str], horizon: int) -> tuple[Growth, dict[str, float]]:
    """Fit on the last FIT_MONTHS complete months of `series` (month -> value; a missing month is 0),
    then project the `horizon` months after the last complete one."""
    if not complete:
        return Growth(0.0, 0.0, 0), {}
    fitted = month_range(complete[0], complete[-1])[-FIT_MONTHS:]
    growth = fit_growth([float(series.get(m, 0)) for m in fitted])
    last = len(fitted) - 1
    return growth, {add_months(fitted[-1], k): growth.at(last + k) for k in range(1, horizon + 1)}


def first_day_share(days: Mapping[str, int]) -> float | None:
    """The share of a month's records created on its 1st (day keys "01".."31"); None without records."""
    total = sum(days.values())
    return sum(n for d, n in days.items() if int(d) == 1) / total if total else None


def transfer_first_day_share(days: Mapping[str, Mapping[str, int]]) -> float | None:
    """The share of the month's transfer estimate that lands on the 1st (table -> day -> records)."""
    month = transfer_estimate({t: sum(by.values()) for t, by in days.items()})
    first = transfer_estimate({t: sum(n for d, n in by.items() if int(d) == 1) for t, by in days.items()})
    return first / month if month else None


def bytes_per_record(size: int, records: int) -> float:
    """A full-field CSV export's bytes per record (its header spread over the records)."""
    return size / records if records else 0.0


@dataclass(frozen=True)
class Read:
    """One object a sync family reads: its Data Query table and how its documents are flagged."""

    table: str
    mark: str | None = None  # "action" (POST /v1/action/update), "memo" (PUT per memo) or None


def api_calls(records: Mapping[str, float], reads: Iterable[Read]) -> int:
    """Calls to move `records` (table -> records in the period) through every family's reads: one
    Object Query page per 99 records read, plus the marking calls of ERP documents (50 per action
    call, one PUT per memo). A table read by two families is read (and paged) twice."""
    calls = 0
    for r in reads:
        n = records.get(r.table, 0.0)
        calls += math.ceil(n / MAX_PAGE_SIZE)
        if r.mark == "action":
            calls += math.ceil(n / ACTION_PER_CALL)
        elif r.mark == "memo":
            calls += math.ceil(n / MEMO_PER_CALL)
    return calls


def family_reads(families: Iterable) -> list[Read]:
    """Every family's objects as `Read`s (families.Family models; objects without a sizing table skipped)."""
    from .catalog import ACTION_TYPES, MEMO_PATHS

    reads = []
    for family in families:
        for o in family.objects:
            if o.name in OBJECT_TABLES:
                mark = None
                if o.mark_transferred:
                    mark = "action" if o.name in ACTION_TYPES else "memo" if o.name in MEMO_PATHS else None
                reads.append(Read(OBJECT_TABLES[o.name], mark))
    return reads


def daily_limit(limit_per_minute: int | None, override: int | None) -> tuple[int | None, str]:
    """The tenant's daily API limit and where it comes from: the run's `daily_api_limit`, else Zuora's
    tier told by the RateLimit-Limit header (preflight's table), else the minute's limit all day."""
    from .preflight import DAILY_LIMIT_BY_MINUTE_LIMIT

    if override:
        return int(override), "given as daily_api_limit"
    if limit_per_minute is None:
        return None, "unknown: Zuora sent no RateLimit-Limit header"
    if limit_per_minute in DAILY_LIMIT_BY_MINUTE_LIMIT:
        daily, tier = DAILY_LIMIT_BY_MINUTE_LIMIT[limit_per_minute]
        return daily, f"Zuora's {tier} tier ({limit_per_minute:,} calls/min)"
    return limit_per_minute * 24 * 60, f"assumed: {limit_per_minute:,} calls/min all day"
