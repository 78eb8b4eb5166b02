"""The `zuora_etl_state` database: runs, the sync ledger and dead letters.

- `zuora_etl_runs`: one row per run and object (window, counts, API calls, duration, status).
- `zuora_etl_ledger`: one row per record per run and its outcome (loaded, unchanged, quarantined,
  rejected), so that anyone can answer "when did this invoice reach the ERP, and from which run?".
- `zuora_etl_dead_letters`: every record that did not land, with the stage, the reason and the
  record itself, for replay.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import sqlalchemy as sa

from .db import create_tables, engine_for

STATE_CONN_ID = "zuora_etl_state"
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
    sa.Index("zuora_etl_ledger_record", "family", "object", "record_id"),
    sa.Index("zuora_etl_ledger_run", "run_id"),
)

dead_letters = sa.Table(
    "zuora_etl_dead_letters",
    metadata,
    *_record_columns(),
    sa.Column("stage", sa.String(16), nullable=False),  # transform, load, mark
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("payload", sa.Text),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("resolved_at", sa.DateTime),
    sa.Index("zuora_etl_dead_letters_open", "family", "object", "resolved_at"),
)

LEDGER_CHUNK = 5_000  # rows per insert: large enough to be cheap, small enough for any driver


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class StateStore:
    def __init__(self, conn_id: str = STATE_CONN_ID, engine: sa.Engine | None = None) -> None:
        self.engine = engine or engine_for(conn_id)
        create_tables(self.engine, *metadata.sorted_tables)

    def record_outcomes(
        self, run_id: str, family: str, obj: str, outcome: str, items: Iterable[tuple[str, datetime | None]]
    ) -> int:
        at = _now()
        rows = [
            {"run_id": run_id, "family": family, "object": obj, "record_id": rid, "updated_date": upd,
             "outcome": outcome, "at": at}
            for rid, upd in items
        ]  # fmt: skip
        with self.engine.begin() as conn:
            for start in range(0, len(rows), LEDGER_CHUNK):
                conn.execute(ledger.insert(), rows[start : start + LEDGER_CHUNK])
        return len(rows)

    def dead_letter(
        self, run_id: str, family: str, obj: str, stage: str, items: Iterable[tuple[str | None, str, str | None]]
    ) -> int:
        at = _now()
        rows = [
            {"run_id": run_id, "family": family, "object": obj, "record_id": rid, "stage": stage,
             "reason": reason, "payload": payload, "created_at": at}
            for rid, reason, payload in items
        ]  # fmt: skip
        if rows:
            with self.engine.begin() as conn:
                conn.execute(dead_letters.insert(), rows)
        return len(rows)

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

    def open_dead_letters(self, family: str | None = None, obj: str | None = None) -> list[dict]:
        query = sa.select(dead_letters).where(dead_letters.c.resolved_at.is_(None)).order_by(dead_letters.c.seq)
        if family:
            query = query.where(dead_letters.c.family == family)
        if obj:
            query = query.where(dead_letters.c.object == obj)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]
