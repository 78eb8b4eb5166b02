"""What the "Zuora Sync" page shows, as typed values built from plain inputs.

`build_snapshot` reads the `zuora_etl_state` database (runs, open dead letters, reconciliation and
sizing results) through an engine, takes the watermark Variables as a mapping and the time as an
argument, and looks for report files under the reports root. Nothing here knows about HTTP or the
API server: the app (`app.py`) gathers the inputs and renders the result.

Tables a fresh state database does not have yet (no reconciliation ever ran) read as empty; nothing
is created: the page only reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from ..families import Family
from ..reconciliation_store import summary as reconciliation_table
from ..reports import run_folder
from ..sizing import sizing_table
from ..state import dead_letters as dead_letters_table
from ..state import runs as runs_table
from ..windows import hwm_variable, parse_instant

# The last runs shown per family and object: enough to see a trend, short enough for one screen.
RUNS_PER_OBJECT = 5
# A report's files, as reports.report_dir names the run's folder.


@dataclass(frozen=True)
class RunSummary:
    """One `zuora_etl_runs` row: a run's counts and duration for one object."""

    run_id: str
    dag_id: str | None
    mode: str | None
    status: str | None
    rows_extracted: int | None
    rows_loaded: int | None
    rows_unchanged: int | None
    rows_quarantined: int | None
    rows_rejected: int | None
    rows_marked: int | None
    api_calls: int | None
    seconds: float | None
    finished_at: datetime | None
    watermark_after: str | None


@dataclass(frozen=True)
class ObjectStatus:
    family: str
    dag_id: str
    object: str
    watermark: datetime | None  # None: never synced (the next run starts at the initial watermark)
    watermark_raw: str | None  # the Variable as stored (shown when it does not parse)
    lag_seconds: float | None  # now minus the watermark
    runs: list[RunSummary]  # newest first
    open_dead_letters: int
    oldest_dead_letter: datetime | None

    @property
    def variable(self) -> str:
        return hwm_variable(self.family, self.object)


@dataclass(frozen=True)
class FamilyStatus:
    family: str
    dag_id: str
    target: str
    description: str
    objects: list[ObjectStatus]

    @property
    def open_dead_letters(self) -> int:
        return sum(o.open_dead_letters for o in self.objects)


@dataclass(frozen=True)
class ReconciliationRow:
    family: str
    object: str
    period_start: datetime
    period_end: datetime
    zuora_count: int
    target_count: int
    missing: int
    extra: int
    stale: int
    mismatched: int
    repaired: int

    @property
    def differences(self) -> int:
        return self.missing + self.extra + self.stale + self.mismatched


@dataclass(frozen=True)
class ReconciliationStatus:
    run_id: str
    finished_at: datetime | None
    rows: list[ReconciliationRow]
    report: str | None  # path under the reports root of its report.html, when it exists

    @property
    def differences(self) -> int:
        return sum(r.differences for r in self.rows)


@dataclass(frozen=True)
class SizingStatus:
    run_id: str
    tables: int
    months: int
    records: int
    chart: str | None  # path under the reports root of its chart.png, when it exists
    report: str | None


@dataclass(frozen=True)
class Snapshot:
    taken_at: datetime
    families: list[FamilyStatus]
    reconciliation: ReconciliationStatus | None
    sizing: SizingStatus | None
    broken_families: dict[str, str] = field(default_factory=dict)  # family file -> why it does not load


def report_path(kind: str, run_id: str, name: str) -> str:
    """`<kind>/<run folder>/<name>`, relative to the reports root."""
    return f"{kind}/{run_folder(run_id)}/{name}"


def _utc(value: datetime | None) -> datetime | None:
    """State tables hold naive UTC datetimes."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _watermark(raw: str | None) -> datetime | None:
    if not raw:
        return None
    try:
        return parse_instant(raw)
    except ValueError:
        return None


def last_runs(engine: sa.Engine, per_object: int = RUNS_PER_OBJECT) -> dict[tuple[str, str], list[RunSummary]]:
    """The newest `per_object` rows of `zuora_etl_runs` per (family, object), newest first."""
    rank = (
        sa.func.row_number()
        .over(partition_by=(runs_table.c.family, runs_table.c.object), order_by=runs_table.c.finished_at.desc())
        .label("rank")
    )
    ranked = sa.select(runs_table, rank).subquery()
    query = sa.select(ranked).where(ranked.c.rank <= per_object).order_by(ranked.c.finished_at.desc())
    found: dict[tuple[str, str], list[RunSummary]] = {}
    with engine.connect() as conn:
        for row in conn.execute(query).mappings():
            found.setdefault((row["family"], row["object"]), []).append(
                RunSummary(
                    run_id=row["run_id"],
                    dag_id=row["dag_id"],
                    mode=row["mode"],
                    status=row["status"],
                    rows_extracted=row["rows_extracted"],
                    rows_loaded=row["rows_loaded"],
                    rows_unchanged=row["rows_unchanged"],
                    rows_quarantined=row["rows_quarantined"],
                    rows_rejected=row["rows_rejected"],
                    rows_marked=row["rows_marked"],
                    api_calls=row["api_calls"],
                    seconds=row["seconds"],
                    finished_at=_utc(row["finished_at"]),
                    watermark_after=row["watermark_after"],
                )
            )
    return found


def open_dead_letter_counts(engine: sa.Engine) -> dict[tuple[str, str], tuple[int, datetime | None]]:
    """(family, object) -> (open dead letters, when the oldest was written)."""
    t = dead_letters_table
    query = (
        sa.select(t.c.family, t.c.object, sa.func.count(), sa.func.min(t.c.created_at))
        .where(t.c.resolved_at.is_(None))
        .group_by(t.c.family, t.c.object)
    )
    with engine.connect() as conn:
        return {(f, o): (n, _utc(oldest)) for f, o, n, oldest in conn.execute(query)}


def last_reconciliation(engine: sa.Engine) -> tuple[str, datetime | None, list[ReconciliationRow]] | None:
    """The run id, end and rows of the reconciliation that finished last, or None."""
    t = reconciliation_table
    with engine.connect() as conn:
        latest = conn.execute(
            sa.select(t.c.run_id, t.c.finished_at).order_by(t.c.finished_at.desc().nulls_last()).limit(1)
        ).first()
        if latest is None:
            return None
        query = sa.select(t).where(t.c.run_id == latest.run_id).order_by(t.c.family, t.c.object)
        rows = [
            ReconciliationRow(
                family=r["family"],
                object=r["object"],
                period_start=_utc(r["period_start"]),
                period_end=_utc(r["period_end"]),
                zuora_count=r["zuora_count"],
                target_count=r["target_count"],
                missing=r["missing"],
                extra=r["extra"],
                stale=r["stale"],
                mismatched=r["mismatched"],
                repaired=r["repaired"] or 0,
            )
            for r in conn.execute(query).mappings()
        ]
    return latest.run_id, _utc(latest.finished_at), rows


def last_sizing(engine: sa.Engine, newest_first: Sequence[str] = ()) -> tuple[str, int, int, int] | None:
    """(run id, tables, months, records) of the newest sizing run with counts: the first of
    `newest_first` (the sizing DAG's runs, newest first) that has rows, else the greatest run id."""
    t = sizing_table
    totals = sa.select(
        t.c.run_id,
        sa.func.count(sa.distinct(t.c.object)),
        sa.func.count(sa.distinct(t.c.month)),
        sa.func.sum(t.c.records),
    ).group_by(t.c.run_id)
    with engine.connect() as conn:
        found = {run_id: (tables, months, int(n or 0)) for run_id, tables, months, n in conn.execute(totals)}
    if not found:
        return None
    run_id = next((r for r in newest_first if r in found), None) or max(found)
    return (run_id, *found[run_id])


def _exists(root: Any, relative: str) -> bool:
    if root is None:
        return False
    try:
        return (root / relative).exists()
    except Exception:  # an unreachable store (a bucket without credentials here): no link
        return False


def build_snapshot(
    families: Sequence[Family],
    engine: sa.Engine,
    watermarks: Mapping[str, str],
    now: datetime,
    *,
    reports_root: Any = None,
    sizing_runs: Sequence[str] = (),
    runs_per_object: int = RUNS_PER_OBJECT,
    broken_families: Mapping[str, str] | None = None,
) -> Snapshot:
    """The page's content: per family and object its watermark (from `watermarks`, Variable name ->
    value) and lag at `now`, its last runs and open dead letters; the last reconciliation and sizing
    results, with the report files found under `reports_root` (an ObjectStoragePath, or None)."""
    now = now.astimezone(UTC) if now.tzinfo else now.replace(tzinfo=UTC)
    tables = set(sa.inspect(engine).get_table_names())
    runs = last_runs(engine, runs_per_object) if runs_table.name in tables else {}
    letters = open_dead_letter_counts(engine) if dead_letters_table.name in tables else {}

    statuses = []
    for family in sorted(families, key=lambda f: f.family):
        objects = []
        for o in family.objects:
            raw = watermarks.get(hwm_variable(family.family, o.name))
            mark = _watermark(raw)
            count, oldest = letters.get((family.family, o.name), (0, None))
            objects.append(
                ObjectStatus(
                    family=family.family,
                    dag_id=family.dag_id,
                    object=o.name,
                    watermark=mark,
                    watermark_raw=raw,
                    lag_seconds=(now - mark).total_seconds() if mark else None,
                    runs=runs.get((family.family, o.name), []),
                    open_dead_letters=count,
                    oldest_dead_letter=oldest,
                )
            )
        statuses.append(FamilyStatus(family.family, family.dag_id, family.target, family.description, objects))

    reconciliation = None
    if reconciliation_table.name in tables and (found := last_reconciliation(engine)):
        run_id, finished, rows = found
        report = report_path("reconciliation", run_id, "report.html")
        reconciliation = ReconciliationStatus(run_id, finished, rows, report if _exists(reports_root, report) else None)

    sizing = None
    if sizing_table.name in tables and (measured := last_sizing(engine, sizing_runs)):
        run_id, n_tables, months, records = measured
        chart, report = report_path("sizing", run_id, "chart.png"), report_path("sizing", run_id, "report.html")
        sizing = SizingStatus(
            run_id,
            n_tables,
            months,
            records,
            chart if _exists(reports_root, chart) else None,
            report if _exists(reports_root, report) else None,
        )

    return Snapshot(now, statuses, reconciliation, sizing, dict(broken_families or {}))


def format_lag(seconds: float | None) -> str:
    """A lag in words a person reads at a glance: `45 s`, `12 min`, `3 h 05 min`, `2 d 04 h`."""
    if seconds is None:
        return "-"
    s = int(max(seconds, 0))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600:02d} h"
