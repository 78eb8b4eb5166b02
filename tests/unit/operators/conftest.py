from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from tests.sync_harness import SyncEnv


@pytest.fixture
def env(fresh_emulator, tmp_path, monkeypatch) -> SyncEnv:
    return SyncEnv(fresh_emulator, tmp_path, monkeypatch)


def context(run_id: str = "run", map_index: int = -1) -> dict:
    return {"run_id": run_id, "ti": SimpleNamespace(map_index=map_index)}


def everything() -> list[dict]:
    return [{"lo": None, "hi": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}]  # changes made this second too
