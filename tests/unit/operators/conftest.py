from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from zuora_etl.mapping import _cached_mapping

from tests.airflow_env import ROOT
from tests.sync_harness import SyncEnv


@pytest.fixture
def env(fresh_emulator, tmp_path, monkeypatch) -> SyncEnv:
    return SyncEnv(fresh_emulator, tmp_path, monkeypatch)


def context(run_id: str = "run", map_index: int = -1) -> dict:
    return {"run_id": run_id, "ti": SimpleNamespace(map_index=map_index)}


def everything() -> list[dict]:
    return [{"lo": None, "hi": (datetime.now(UTC) + timedelta(hours=1)).isoformat()}]  # changes made this second too


@pytest.fixture
def strict_status(env, tmp_path, monkeypatch):
    """A mapping allowing only the statuses the tenant has now; a record given another one fails."""
    statuses = sorted({r["status"] for r in env.emu.store.truth("invoices")})
    root = tmp_path / "include"
    shutil.copytree(ROOT / "include", root, ignore=shutil.ignore_patterns("zuora_emulator"))
    path = root / "mappings" / "invoices.yaml"
    strict = f"status: {{source: status, type: string, allowed: [{', '.join(statuses)}]}}"
    path.write_text(path.read_text().replace("status: {source: status, type: string}", strict))
    monkeypatch.setenv("ZUORA_ETL_INCLUDE_DIR", str(root))
    _cached_mapping.cache_clear()
    yield
    _cached_mapping.cache_clear()
