"""A reference ERP REST API (documents in SQLite, idempotency keys, injectable faults) that the ERP
families deliver to over HTTP, end to end, in demos and tests."""

from __future__ import annotations

from .server import ReferenceErp

__all__ = ["ReferenceErp"]
