from __future__ import annotations

import pytest

from tests.sync_harness import SyncEnv


@pytest.fixture
def env(fresh_emulator, tmp_path, monkeypatch) -> SyncEnv:
    return SyncEnv(fresh_emulator, tmp_path, monkeypatch)
