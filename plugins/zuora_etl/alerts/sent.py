"""What the watch DAG has sent: `zuora_etl_alerts` in the state database, one row per condition
that is alerting (its key, when it was first and last sent, what it said). A condition that ends
loses its row, so its next start alerts at once."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from ..db import create_tables, engine_for
from ..settings import STATE_CONN_ID
from .thresholds import Condition

metadata = sa.MetaData()

alerts = sa.Table(
    "zuora_etl_alerts",
    metadata,
    sa.Column("key", sa.String(250), primary_key=True),  # kind:family:object
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("family", sa.String(64), nullable=False),
    sa.Column("object", sa.String(64), nullable=False),
    sa.Column("detail", sa.Text),
    sa.Column("first_sent_at", sa.DateTime, nullable=False),
    sa.Column("last_sent_at", sa.DateTime, nullable=False),
    sa.Column("times_sent", sa.Integer, nullable=False),
)


def _naive(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


class SentAlerts:
    def __init__(self, conn_id: str = STATE_CONN_ID, engine: sa.Engine | None = None) -> None:
        self.engine = engine or engine_for(conn_id)
        create_tables(self.engine, alerts)

    def sent(self) -> dict[str, datetime]:
        """Key -> when it was last sent (aware UTC)."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(alerts.c.key, alerts.c.last_sent_at)).tuples().all()
        return {k: at.replace(tzinfo=UTC) for k, at in rows}

    def record(self, condition: Condition, at: datetime) -> None:
        at = _naive(at)
        with self.engine.begin() as conn:
            done = conn.execute(
                alerts.update()
                .where(alerts.c.key == condition.key)
                .values(last_sent_at=at, detail=condition.detail, times_sent=alerts.c.times_sent + 1)
            )
            if not done.rowcount:
                conn.execute(
                    alerts.insert().values(
                        key=condition.key, kind=condition.kind, family=condition.family, object=condition.object,
                        detail=condition.detail, first_sent_at=at, last_sent_at=at, times_sent=1,
                    )
                )  # fmt: skip

    def forget(self, keys: list[str]) -> None:
        if keys:
            with self.engine.begin() as conn:
                conn.execute(alerts.delete().where(alerts.c.key.in_(keys)))

    def rows(self) -> list[dict]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(sa.select(alerts).order_by(alerts.c.key)).mappings()]


__all__ = ["SentAlerts", "alerts"]
