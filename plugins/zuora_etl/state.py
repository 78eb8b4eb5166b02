"""The `zuora_etl_state` database: runs, the sync ledger and dead letters.

- `zuora_etl_runs`: one row per run and object (window, counts, API calls, duration, status).
- `zuora_etl_ledger`: one row per record per run and its outcome (loaded, unchanged, canceled,
  skipped, quarantined, rejected, held, and `flagged` when the mark step set its transferred flag),
  so that anyone can answer "when did this invoice reach the ERP, and from which run?". It is also
  how a family decides whether a record it reads is new to the target (create), was delivered
  before (update, or cancel when it left the family's scope), or never concerned it (skipped); an
  HTTP target's rows carry the digest of the payload sent, so an unchanged document is not sent
  again. A load writes its rows as `pending` *before* it commits to the target and settles them
  after, so a worker that dies between the two leaves `pending` rows that the next load settles
  against the target: every committed row has its ledger entry.
- `zuora_etl_dead_letters`: every record that did not land, with the stage, the reason and the
  record itself. One open letter per record: every later run of the family reads the record from
  Zuora again and tries it, until it lands (`resolved_at`, resolution `loaded`) or Zuora no longer
  has it under the family's filters (resolution `gone`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from itertools import repeat
from typing import TYPE_CHECKING

import sqlalchemy as sa

from .db import add_missing_columns, create_tables, engine_for, insert_rows, stored_values
from .settings import STATE_CONN_ID

if TYPE_CHECKING:  # imported where used: light DAG files (see dag_factory)
    import pandas as pd

metadata = sa.MetaData()


def _record_columns() -> list[sa.Column]:
    """What ledger rows and dead letters share: which run, family, object and record."""
    return [
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(250), nullable=False),
        sa.Column("family", sa.String(64), nullable=False),
        sa.Column("object", sa.String(64), nullable=False),
        sa.Column("record_id", sa.String(64)),
    ]


runs = sa.Table(
    "zuora_etl_runs",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("family", sa.String(64), primary_key=True),
    sa.Column("object", sa.String(64), primary_key=True),
    sa.Column("dag_id", sa.String(250)),
    sa.Column("mode", sa.String(16)),  # sync, backfill, replay, dry_run
    sa.Column("window_lo", sa.DateTime),
    sa.Column("window_hi", sa.DateTime),
    sa.Column("rows_extracted", sa.Integer),
    sa.Column("rows_loaded", sa.Integer),
    sa.Column("rows_unchanged", sa.Integer),
    sa.Column("rows_quarantined", sa.Integer),
    sa.Column("rows_rejected", sa.Integer),
    sa.Column("rows_marked", sa.Integer),
    sa.Column("rows_held", sa.Integer),
    sa.Column("rows_canceled", sa.Integer),
    sa.Column("rows_skipped", sa.Integer),
    sa.Column("rows_inserted", sa.Integer),  # a dry run: of rows_loaded, how many would be new
    sa.Column("api_calls", sa.Integer),
    sa.Column("seconds", sa.Float),
    sa.Column("watermark_before", sa.String(40)),
    sa.Column("watermark_after", sa.String(40)),
    sa.Column("status", sa.String(16)),
    sa.Column("finished_at", sa.DateTime),
)

ledger = sa.Table(
    "zuora_etl_ledger",
    metadata,
    *_record_columns(),
    sa.Column("updated_date", sa.DateTime),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("at", sa.DateTime, nullable=False),
    sa.Column("digest", sa.String(64)),  # an HTTP target: sha256 of the payload delivered
    sa.Index("zuora_etl_ledger_record", "family", "object", "record_id"),
    sa.Index("zuora_etl_ledger_run", "run_id"),
    sa.Index("zuora_etl_ledger_outcome", "outcome", "family", "object"),  # pending rows, settled per part
)

dead_letters = sa.Table(
    "zuora_etl_dead_letters",
    metadata,
    *_record_columns(),
    sa.Column("stage", sa.String(16), nullable=False),  # transform, load, mark
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("payload", sa.Text),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("attempts", sa.Integer),  # runs that tried the record and failed again
    sa.Column("last_run_id", sa.String(250)),
    sa.Column("resolved_at", sa.DateTime),
    sa.Column("resolution", sa.String(16)),  # loaded, gone
    sa.Index("zuora_etl_dead_letters_open", "family", "object", "resolved_at"),
)

# Which run of a family may move its watermarks now: two syncs of one family never overlap, while
# backfills, dry runs and replays run beside them (they move no watermark).
sync_leases = sa.Table(
    "zuora_etl_sync_leases",
    metadata,
    sa.Column("family", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("taken_at", sa.DateTime, nullable=False),
)

# The range the first run of an Airflow backfill reads for the whole chain of its runs: the others
# skip only an interval a leader recorded here (see planning.backfill_block).
backfill_ranges = sa.Table(
    "zuora_etl_backfill_ranges",
    metadata,
    sa.Column("family", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("lo", sa.DateTime, nullable=False),
    sa.Column("hi", sa.DateTime, nullable=False),
)

# Calls made to each HTTP target per UTC day, against the connection's `daily_call_budget`: shared
# by every task and worker, so the budget holds across runs and parallel families.
call_budget = sa.Table(
    "zuora_etl_call_budget",
    metadata,
    sa.Column("conn_id", sa.String(250), primary_key=True),
    sa.Column("day", sa.Date, primary_key=True),
    sa.Column("calls", sa.Integer, nullable=False),
)

LEDGER_CHUNK = 5_000  # rows per insert: large enough to be cheap, small enough for any driver
LEDGER_INSERT_COLUMNS = ("run_id", "family", "object", "record_id", "updated_date", "outcome", "at")
IN_CHUNK = 900  # ids per IN (...) list: under SQLite's oldest bound-parameter limit of 999
PENDING = "pending"
# Outcomes that mean the target holds the record (a version of it): a later read of it is an update.
DELIVERED = ("loaded", "unchanged")
CANCELED = "canceled"
FLAGGED = "flagged"


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def _chunks(values: list, size: int = IN_CHUNK) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


class StateStore:
    def __init__(self, conn_id: str = STATE_CONN_ID, engine: sa.Engine | None = None) -> None:
        self.engine = engine or engine_for(conn_id)
        create_tables(self.engine, *metadata.sorted_tables)
        for table in (dead_letters, runs, ledger):  # state databases made before a column existed
            add_missing_columns(self.engine, table)

    # ---------- ledger ----------
    def record_outcomes(
        self,
        run_id: str,
        family: str,
        obj: str,
        outcome: str,
        items: Iterable[tuple[str, datetime | None]] | pd.DataFrame,
    ) -> int:
        """One ledger row per (record id, updated_date), or per row of a frame of `record_id` and
        `updated_date` columns (a load's batch: converted column by column, no per-row objects)."""
        import pandas as pd

        if isinstance(items, pd.DataFrame):
            ids, updated = items["record_id"].tolist(), items["updated_date"]
        else:
            pairs = list(items)
            ids, updated = [rid for rid, _ in pairs], pd.Series([upd for _, upd in pairs], dtype=object)
        if not ids:
            return 0
        dialect = self.engine.dialect
        versions = stored_values(ledger.c.updated_date, updated.reset_index(drop=True), dialect)
        at = stored_values(ledger.c.at, pd.Series([_now()]), dialect)[0]
        rows = list(zip(repeat(run_id), repeat(family), repeat(obj), ids, versions, repeat(outcome), repeat(at)))
        with self.engine.begin() as conn:
            for chunk in _chunks(rows, LEDGER_CHUNK):
                insert_rows(conn, ledger, LEDGER_INSERT_COLUMNS, chunk, stored=True)
        return len(rows)

    def settle(
        self,
        run_id: str,
        family: str,
        obj: str,
        outcomes: dict[str, list[str]],
        rest: str,
        digests: dict[str, str] | None = None,
    ) -> None:
        """Turn this run's `pending` rows of `obj` into their outcomes: the ids listed per outcome,
        and every other pending row into `rest`; `digests` (an HTTP target) are stored first."""
        key = (ledger.c.run_id == run_id) & (ledger.c.family == family) & (ledger.c.object == obj)
        pending = key & (ledger.c.outcome == PENDING)
        with self.engine.begin() as conn:
            if digests:
                stmt = (
                    ledger.update()
                    .where(pending & (ledger.c.record_id == sa.bindparam("rid")))
                    .values(digest=sa.bindparam("dg"))
                )
                conn.execute(stmt, [{"rid": rid, "dg": dg} for rid, dg in digests.items()])
            for outcome, ids in outcomes.items():
                for chunk in _chunks(ids):
                    conn.execute(ledger.update().where(pending & ledger.c.record_id.in_(chunk)).values(outcome=outcome))
            conn.execute(ledger.update().where(pending).values(outcome=rest))

    def deliveries(self, family: str, obj: str, ids: list[str]) -> dict[str, tuple[str, str | None]]:
        """For each of `ids` the family ever delivered or canceled: (its last such outcome, the digest
        of what was sent). Ids absent were never delivered."""
        wanted = (*DELIVERED, CANCELED)
        found: dict[str, tuple[str, str | None]] = {}
        base = (ledger.c.family == family) & (ledger.c.object == obj) & ledger.c.outcome.in_(wanted)
        with self.engine.connect() as conn:
            for chunk in _chunks(list(dict.fromkeys(ids))):
                query = (
                    sa.select(ledger.c.record_id, ledger.c.outcome, ledger.c.digest)
                    .where(base & ledger.c.record_id.in_(chunk))
                    .order_by(ledger.c.seq)
                )
                for rid, outcome, digest in conn.execute(query):
                    found[rid] = (outcome, digest)  # ordered by seq: the last one wins
        return found

    def flagged(self, run_id: str, family: str, obj: str) -> set[str]:
        """Documents this run's mark step already flagged in Zuora (a retried mark skips them)."""
        mine = (ledger.c.run_id == run_id) & (ledger.c.family == family) & (ledger.c.object == obj)
        query = sa.select(ledger.c.record_id).where(mine & (ledger.c.outcome == FLAGGED))
        with self.engine.connect() as conn:
            return set(conn.execute(query).scalars())

    # ---------- call budgets ----------
    def take_calls(self, conn_id: str, n: int, limit: int, day: datetime | None = None) -> int | None:
        """Take `n` calls of `conn_id`'s daily budget of `limit` (UTC day): the calls left after,
        or None when that would pass the limit (nothing is taken)."""
        today = (day or datetime.now(UTC)).date()
        key = (call_budget.c.conn_id == conn_id) & (call_budget.c.day == today)
        for _ in range(3):  # lose an insert race at most twice
            with self.engine.begin() as conn:
                room = key & (call_budget.c.calls + n <= limit)
                took = conn.execute(call_budget.update().where(room).values(calls=call_budget.c.calls + n))
                if took.rowcount:
                    return limit - conn.execute(sa.select(call_budget.c.calls).where(key)).scalar_one()
                if conn.execute(sa.select(call_budget.c.calls).where(key)).scalar() is not None:
                    return None
                if n > limit:
                    return None
                try:
                    conn.execute(call_budget.insert().values(conn_id=conn_id, day=today, calls=n))
                    return limit - n
                except sa.exc.IntegrityError:
                    pass
        raise RuntimeError(f"could not take calls of {conn_id}'s daily budget: contended")

    def pending(
        self, family: str, obj: str, alive: Callable[[str], bool] = lambda _: False
    ) -> list[tuple[int, str, datetime | None]]:
        """(seq, record id, updated_date) of ledger rows a dead worker left pending: rows of runs
        `alive` says are still running (a backfill beside a sync) are theirs to settle."""
        query = sa.select(ledger.c.run_id, ledger.c.seq, ledger.c.record_id, ledger.c.updated_date).where(
            (ledger.c.family == family) & (ledger.c.object == obj) & (ledger.c.outcome == PENDING)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        live = {run_id for run_id in {r[0] for r in rows} if alive(run_id)}
        return [(seq, rid, upd) for run_id, seq, rid, upd in rows if run_id not in live]

    def set_outcome(self, seqs: list[int], outcome: str) -> None:
        with self.engine.begin() as conn:
            for chunk in _chunks(seqs):
                conn.execute(ledger.update().where(ledger.c.seq.in_(chunk)).values(outcome=outcome))

    # ---------- dead letters ----------
    def dead_letter(
        self, run_id: str, family: str, obj: str, stage: str, items: Iterable[tuple[str | None, str, str | None]]
    ) -> int:
        """Record what did not land; a record that already has an open letter keeps that one (its
        reason, payload and attempts brought up to date), so retries never pile up letters."""
        at = _now()
        items = list(items)
        ids = [rid for rid, _, _ in items if rid]
        open_ = self._open_letters(family, obj, ids)
        inserts = []
        with self.engine.begin() as conn:
            for rid, reason, payload in items:
                if rid in open_:
                    conn.execute(
                        dead_letters.update()
                        .where(dead_letters.c.seq == open_[rid]["seq"])
                        .values(stage=stage, reason=reason, payload=payload, last_run_id=run_id,
                                attempts=(open_[rid]["attempts"] or 1) + 1)
                    )  # fmt: skip
                else:
                    inserts.append({"run_id": run_id, "family": family, "object": obj, "record_id": rid,
                                    "stage": stage, "reason": reason, "payload": payload, "created_at": at,
                                    "attempts": 1, "last_run_id": run_id})  # fmt: skip
            if inserts:
                conn.execute(dead_letters.insert(), inserts)
        return len(items)

    def _open_letters(self, family: str, obj: str, ids: list[str]) -> dict[str, dict]:
        found: dict[str, dict] = {}
        base = (dead_letters.c.family == family) & (dead_letters.c.object == obj) & dead_letters.c.resolved_at.is_(None)
        with self.engine.connect() as conn:
            for chunk in _chunks(ids):
                query = sa.select(dead_letters.c.seq, dead_letters.c.record_id, dead_letters.c.attempts).where(
                    base & dead_letters.c.record_id.in_(chunk)
                )
                found.update({r.record_id: dict(r._mapping) for r in conn.execute(query)})
        return found

    def open_dead_letter_ids(self, family: str, obj: str) -> list[str]:
        """The records of `obj` every run of `family` reads again from Zuora, oldest letter first."""
        query = (
            sa.select(dead_letters.c.record_id)
            .where((dead_letters.c.family == family) & (dead_letters.c.object == obj))
            .where(dead_letters.c.resolved_at.is_(None) & dead_letters.c.record_id.is_not(None))
            .order_by(dead_letters.c.seq)
        )
        with self.engine.connect() as conn:
            return list(dict.fromkeys(conn.execute(query).scalars()))

    def resolve_dead_letters(self, family: str, obj: str, ids: Iterable[str], resolution: str) -> int:
        at, resolved = _now(), 0
        base = (dead_letters.c.family == family) & (dead_letters.c.object == obj) & dead_letters.c.resolved_at.is_(None)
        with self.engine.begin() as conn:
            for chunk in _chunks(list(ids)):
                result = conn.execute(
                    dead_letters.update()
                    .where(base & dead_letters.c.record_id.in_(chunk))
                    .values(resolved_at=at, resolution=resolution)
                )
                resolved += result.rowcount or 0
        return resolved

    # ---------- sync leases ----------
    def take_sync_lease(self, family: str, run_id: str, alive: Callable[[str], bool]) -> str | None:
        """Take the family's sync lease for `run_id`; None when taken (or already held), else the run
        id of the live run holding it. A holder that is no longer running loses it."""
        for _ in range(3):  # lose a race to another taker at most twice
            with self.engine.begin() as conn:
                held = conn.execute(sa.select(sync_leases.c.run_id).where(sync_leases.c.family == family)).scalar()
                if held == run_id:
                    return None
                if held is not None and alive(held):
                    return held
                try:
                    if held is None:
                        conn.execute(sync_leases.insert().values(family=family, run_id=run_id, taken_at=_now()))
                        return None
                    moved = conn.execute(
                        sync_leases.update()
                        .where((sync_leases.c.family == family) & (sync_leases.c.run_id == held))
                        .values(run_id=run_id, taken_at=_now())
                    )
                    if moved.rowcount:
                        return None
                except sa.exc.IntegrityError:
                    pass
        raise RuntimeError(f"could not take the sync lease of {family}: contended")

    def release_sync_lease(self, family: str, run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sync_leases.delete().where((sync_leases.c.family == family) & (sync_leases.c.run_id == run_id))
            )

    # ---------- backfill ranges ----------
    def record_backfill_range(self, family: str, run_id: str, lo: datetime, hi: datetime) -> None:
        row = {"family": family, "run_id": run_id, "lo": _naive_utc(lo), "hi": _naive_utc(hi)}
        with self.engine.begin() as conn:
            conn.execute(backfill_ranges.delete().where(
                (backfill_ranges.c.family == family) & (backfill_ranges.c.run_id == run_id)))  # fmt: skip
            conn.execute(backfill_ranges.insert().values(**row))

    def backfill_range_covers(self, family: str, lo: datetime, hi: datetime) -> bool:
        """Whether a leader of an Airflow backfill recorded a range holding `[lo, hi)`."""
        query = sa.select(sa.func.count()).where(
            (backfill_ranges.c.family == family)
            & (backfill_ranges.c.lo <= _naive_utc(lo))
            & (backfill_ranges.c.hi >= _naive_utc(hi))
        )
        with self.engine.connect() as conn:
            return bool(conn.execute(query).scalar())

    # ---------- runs ----------
    def record_run(self, row: dict) -> None:
        row = {**row, "finished_at": _now()}
        key = (runs.c.run_id == row["run_id"]) & (runs.c.family == row["family"]) & (runs.c.object == row["object"])
        with self.engine.begin() as conn:
            conn.execute(runs.delete().where(key))
            conn.execute(runs.insert().values(**{k: v for k, v in row.items() if k in runs.c}))

    def runs(self, family: str | None = None, limit: int = 100) -> list[dict]:
        query = sa.select(runs).order_by(runs.c.finished_at.desc()).limit(limit)
        if family:
            query = query.where(runs.c.family == family)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def run_statuses(self, run_id: str, family: str) -> dict[str, str]:
        """The status `summarize` recorded for each object of a run ({} when it recorded none)."""
        query = sa.select(runs.c.object, runs.c.status).where((runs.c.run_id == run_id) & (runs.c.family == family))
        with self.engine.connect() as conn:
            return dict(conn.execute(query).tuples().all())

    def recent_density(self, family: str, obj: str, limit: int = 10) -> float | None:
        """Records per second of window read by the object's last successful windowed runs, or None
        without such a run: how the plan estimates a window's volume to slice it."""
        query = (
            sa.select(runs.c.rows_extracted, runs.c.window_lo, runs.c.window_hi)
            .where((runs.c.family == family) & (runs.c.object == obj) & runs.c.status.in_(["success", "partial"]))
            .where(runs.c.mode.in_(["sync", "backfill"]) & runs.c.window_lo.is_not(None))
            .order_by(runs.c.finished_at.desc())
            .limit(limit)
        )
        with self.engine.connect() as conn:
            found = conn.execute(query).tuples().all()
        seconds = sum((hi - lo).total_seconds() for _, lo, hi in found if lo and hi and hi > lo)
        return sum(n or 0 for n, _, _ in found) / seconds if seconds > 0 else None

    def open_dead_letters(self, family: str | None = None, obj: str | None = None) -> list[dict]:
        query = sa.select(dead_letters).where(dead_letters.c.resolved_at.is_(None)).order_by(dead_letters.c.seq)
        if family:
            query = query.where(dead_letters.c.family == family)
        if obj:
            query = query.where(dead_letters.c.object == obj)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]
