"""Shared fixtures: an isolated Airflow home (set before anything imports airflow) and live
emulators on free loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.airflow_env import configure

AIRFLOW_HOME = configure()

from include.zuora_emulator import Emulator  # noqa: E402


@pytest.fixture(scope="session")
def shared_emulator() -> Iterator[Emulator]:
    """A read-only emulated tenant shared by tests that do not mutate it."""
    with Emulator(scale="small", seed=42) as emu:
        yield emu


@pytest.fixture
def fresh_emulator() -> Iterator[Emulator]:
    """A private tenant for tests that mutate data, swap faults or expire tokens."""
    with Emulator(scale="small", seed=42) as emu:
        yield emu
