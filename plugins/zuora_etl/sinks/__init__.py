"""Sinks: where mapped rows land. `sink_for(conn_id)` picks the implementation for a connection."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook

from .base import BatchOutcome, Sink

# Connection types that are REST APIs (the contract's "ERP over HTTP"); every other type is SQL.
HTTP_CONN_TYPES = ("http", "https")


def is_http(conn_id: str) -> bool:
    return BaseHook.get_connection(conn_id).conn_type in HTTP_CONN_TYPES


def sink_for(conn_id: str, state: Any = None) -> Sink:
    """The sink behind an Airflow connection: an HTTP API for an `http` connection (its daily call
    budget kept in `state`, the state store), SQL for any SQL connection type."""
    if is_http(conn_id):
        from .http import HttpSink

        return HttpSink(conn_id, state=state)
    from .sql import SqlSink

    return SqlSink(conn_id)


__all__ = ["BatchOutcome", "Sink", "is_http", "sink_for"]
