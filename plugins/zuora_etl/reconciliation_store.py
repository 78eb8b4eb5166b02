"""The reconciliation's two contract tables in the `zuora_etl_state` database.

- `zuora_etl_reconciliation`: one row per run, family and object: the period, how many records
  each side holds in it, the differences by kind, and how many a repair fixed.
- `zuora_etl_reconciliation_diffs`: one row per differing record: its id, the kind (`missing`,
  `extra`, `stale`, `mismatch`) and a detail a person can act on.

Defined in their own MetaData and created on the state engine as state.py does, so the sync's
state tables and these evolve apart.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import TypedDict

import sqlalchemy as sa

from .db import create_tables, engine_for
from .settings import STATE_CONN_ID

metadata = sa.MetaData()

KINDS = ("missing", "extra", "stale", "mismatch")

summary = sa.Table(
    "zuora_etl_reconciliation",
    metadata,
    sa.Column("run_id", sa.String(250), primary_key=True),
    sa.Column("family", sa.String(64), primary_key=True),
    sa.Column("object", sa.String(64), primary_key=True),
    sa.Column("period_start", sa.DateTime, nullable=False),
    sa.Column("period_end", sa.DateTime, nullable=False),  # exclusive
    sa.Column("zuora_count", sa.Integer, nullable=False),
    sa.Column("target_count", sa.Integer, nullable=False),
    sa.Column("missing", sa.Integer, nullable=False),
    sa.Column("extra", sa.Integer, nullable=False),
    sa.Column("stale", sa.Integer, nullable=False),
    sa.Column("mismatched", sa.Integer, nullable=False),
    sa.Column("repaired", sa.Integer, nullable=False, default=0),
    sa.Column("finished_at", sa.DateTime),
)

diffs = sa.Table(
    "zuora_etl_reconciliation_diffs",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(250), nullable=False),
    sa.Column("family", sa.String(64), nullable=False),
    sa.Column("object", sa.String(64), nullable=False),
    sa.Column("id", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Index("zuora_etl_reconciliation_diffs_run", "run_id", "family", "object", "kind"),
)

# Rows per insert of differences: cheap for any driver, small enough to keep memory flat.
DIFF_CHUNK = 2_000


class SummaryRow(TypedDict):
    run_id: str
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


class DiffRow(TypedDict):
    family: str
    object: str
    id: str
    kind: str
    detail: str


class ReconciliationStore:
    def __init__(self, conn_id: str = STATE_CONN_ID, engine: sa.Engine | None = None) -> None:
        self.engine = engine or engine_for(conn_id)
        create_tables(self.engine, *metadata.sorted_tables)

    def clear(self, run_id: str, family: str, obj: str) -> None:
        """Forget what an earlier try of this run's comparison of `obj` wrote (a task retry)."""
        with self.engine.begin() as conn:
            for table in (summary, diffs):
                conn.execute(table.delete().where(
                    (table.c.run_id == run_id) & (table.c.family == family) & (table.c.object == obj)
                ))  # fmt: skip

    def add_diffs(self, run_id: str, rows: Iterable[DiffRow]) -> int:
        """Insert differences in chunks as they stream in; returns how many."""
        total, batch = 0, []
        for row in rows:
            batch.append({"run_id": run_id, **row})
            if len(batch) >= DIFF_CHUNK:
                total += self._insert(batch)
                batch = []
        return total + (self._insert(batch) if batch else 0)

    def _insert(self, batch: list[dict]) -> int:
        with self.engine.begin() as conn:
            conn.execute(diffs.insert(), batch)
        return len(batch)

    def record(self, row: SummaryRow) -> None:
        with self.engine.begin() as conn:
            key = (summary.c.run_id == row["run_id"]) & (summary.c.family == row["family"])
            conn.execute(summary.delete().where(key & (summary.c.object == row["object"])))
            conn.execute(summary.insert().values(**row, finished_at=datetime.now(UTC).replace(tzinfo=None)))

    def set_repaired(self, run_id: str, family: str, repaired: dict[str, int]) -> None:
        with self.engine.begin() as conn:
            for obj, n in repaired.items():
                conn.execute(summary.update().where(
                    (summary.c.run_id == run_id) & (summary.c.family == family) & (summary.c.object == obj)
                ).values(repaired=n))  # fmt: skip

    def summaries(self, run_id: str) -> list[dict]:
        with self.engine.connect() as conn:
            query = sa.select(summary).where(summary.c.run_id == run_id).order_by(summary.c.family)
            return [dict(r) for r in conn.execute(query).mappings()]

    def iter_diffs(
        self,
        run_id: str,
        family: str | None = None,
        obj: str | None = None,
        kinds: Iterable[str] = (),
        chunk: int = DIFF_CHUNK,
    ) -> Iterator[dict]:
        """The run's differences (of one family, object, kinds), in insertion order, read in chunks."""
        kinds = list(kinds)
        where = [diffs.c.run_id == run_id, *([diffs.c.family == family] if family else []),
                 *([diffs.c.object == obj] if obj else []), *([diffs.c.kind.in_(kinds)] if kinds else [])]  # fmt: skip
        last = 0
        while True:
            query = sa.select(diffs).where(*where, diffs.c.seq > last).order_by(diffs.c.seq).limit(chunk)
            with self.engine.connect() as conn:
                rows = [dict(r) for r in conn.execute(query).mappings()]
            yield from rows
            if len(rows) < chunk:
                return
            last = rows[-1]["seq"]

    def diff_ids(self, run_id: str, family: str, obj: str, kinds: Iterable[str]) -> Iterator[tuple[str, str]]:
        """(id, kind) of one object's differences of `kinds`."""
        for row in self.iter_diffs(run_id, family, obj, kinds):
            yield row["id"], row["kind"]
