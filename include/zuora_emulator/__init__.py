"""A local emulator of Zuora's REST API (Object Query, actions, Data Query) for demos and tests."""

from __future__ import annotations

from .server import Emulator

__all__ = ["Emulator"]
