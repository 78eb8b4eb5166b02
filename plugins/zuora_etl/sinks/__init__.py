"""Sinks: where mapped rows land. `sink_for(conn_id)` picks the implementation for a connection."""

from __future__ import annotations

from .base import BatchOutcome, Sink


def sink_for(conn_id: str) -> Sink:
    """The sink behind an Airflow connection: SQL for any SQL connection type."""
    from .sql import SqlSink

    return SqlSink(conn_id)


__all__ = ["BatchOutcome", "Sink", "sink_for"]
