"""Task-log lines as `event key=value ...` (logfmt), so that a page or a batch can be found and
correlated with Zuora's support by its request id and track id.

Written by hand because the fields must land in the message itself: Airflow's bridge from stdlib
logging to its structured task logs keeps only the formatted message (a record's `extra` is dropped),
and the library logs through stdlib loggers so that it logs the same outside a task (CLI, tests)."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def logfmt(event: str, **fields: Any) -> str:
    """`event k1=v1 k2=v2`; a value with spaces, quotes or `=` is quoted; None fields are left out."""
    parts = [event]
    for key, value in fields.items():
        if value is None:
            continue
        text = _text(value)
        if not text or any(c in text for c in ' "=\t\n'):
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


__all__ = ["logfmt"]
