"""State store pieces of HTTP delivery: the ledger's delivery history and the daily call budget."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from zuora_etl.state import StateStore


def store(tmp_path) -> StateStore:
    return StateStore(engine=sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}"))


def test_the_daily_budget_is_shared_and_refuses_past_its_limit(tmp_path):
    one, other = store(tmp_path), store(tmp_path)  # two workers, one database
    day = datetime(2026, 12, 2, tzinfo=UTC)
    assert [one.take_calls("erp", 1, 3, day), other.take_calls("erp", 1, 3, day)] == [2, 1]
    assert one.take_calls("erp", 2, 3, day) is None  # would pass the limit: nothing taken
    assert other.take_calls("erp", 1, 3, day) == 0
    assert one.take_calls("erp", 1, 3, day) is None
    assert one.take_calls("crm", 1, 3, day) == 2  # per connection
    assert one.take_calls("erp", 1, 3, datetime(2026, 12, 3, tzinfo=UTC)) == 2  # per UTC day


def test_deliveries_keep_the_last_delivery_outcome_and_digest(tmp_path):
    state = store(tmp_path)
    state.record_outcomes("r1", "f", "invoices", "pending", [("a", None), ("b", None)])
    state.settle("r1", "f", "invoices", {"rejected": ["b"]}, rest="loaded", digests={"a": "d1"})
    state.record_outcomes("r2", "f", "invoices", "pending", [("a", None)])
    state.settle("r2", "f", "invoices", {"canceled": ["a"]}, rest="loaded")
    assert state.deliveries("f", "invoices", ["a", "b", "c"]) == {"a": ("canceled", None)}
    state.record_outcomes("r3", "f", "invoices", "pending", [("a", None)])
    state.settle("r3", "f", "invoices", {}, rest="loaded", digests={"a": "d2"})
    assert state.deliveries("f", "invoices", ["a"]) == {"a": ("loaded", "d2")}
    assert state.deliveries("other", "invoices", ["a"]) == {}
