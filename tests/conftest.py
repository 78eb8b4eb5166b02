"""Shared fixtures: a live emulator on a free loopback port."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from include.zuora_emulator import Emulator


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
