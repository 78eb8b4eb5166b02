"""The watch DAG's check, over a real state database and a recording sender: what it sends, what it
remembers, and what a channel that fails does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from zuora_etl.alerts.sent import SentAlerts
from zuora_etl.families import get_family
from zuora_etl.state import StateStore
from zuora_etl.watch_dag import check

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def state(tmp_path) -> StateStore:
    return StateStore(engine=sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}"))


class Sender:
    def __init__(self, outcome: dict[str, str] | None = None) -> None:
        self.alerts: list = []
        self.outcome = outcome if outcome is not None else {"zuora_alerts_webhook": "sent"}

    def __call__(self, alert):
        self.alerts.append(alert)
        return self.outcome


def run(state, sender, marks: dict[str, str] | None = None, now: datetime = NOW):
    return check(now, "zuora_watch", "r", "http://ui/log", [get_family("crm_accounts")], (marks or {}).get, state,
                 SentAlerts(engine=state.engine), sender)  # fmt: skip


def test_quiet_when_all_is_well(state):
    sender = Sender()
    marks = {"zuora_hwm__crm_accounts__accounts": (NOW - timedelta(minutes=5)).isoformat()}
    assert run(state, sender, marks) == {"conditions": [], "sent": [], "ended": []}
    assert sender.alerts == []


def test_a_lag_is_sent_once_remembered_then_forgotten_when_it_ends(state):
    sender = Sender()
    stale = {"zuora_hwm__crm_accounts__accounts": (NOW - timedelta(hours=4)).isoformat()}
    assert run(state, sender, stale)["sent"] == ["watermark_lag:crm_accounts:accounts"]
    assert run(state, sender, stale, NOW + timedelta(minutes=15))["sent"] == []
    assert len(sender.alerts) == 1
    (row,) = SentAlerts(engine=state.engine).rows()
    assert row["times_sent"] == 1 and row["first_sent_at"] == NOW.replace(tzinfo=None)
    later = NOW + timedelta(hours=4)  # the default re-alert interval
    assert run(state, sender, stale, later)["sent"] == ["watermark_lag:crm_accounts:accounts"]
    assert SentAlerts(engine=state.engine).rows()[0]["times_sent"] == 2
    fresh = {"zuora_hwm__crm_accounts__accounts": later.isoformat()}
    assert run(state, sender, fresh, later)["ended"] == ["watermark_lag:crm_accounts:accounts"]
    assert SentAlerts(engine=state.engine).rows() == []


def test_a_completed_sync_window_counts_as_current(state):
    hi = (NOW - timedelta(minutes=30)).replace(tzinfo=None)
    state.record_run({"run_id": "s1", "family": "crm_accounts", "object": "accounts", "mode": "sync",
                      "status": "success", "window_hi": hi})  # fmt: skip
    stale = {"zuora_hwm__crm_accounts__accounts": (NOW - timedelta(days=2)).isoformat()}
    assert run(state, Sender(), stale)["conditions"] == []


def test_dead_letters_count_only_open_ones(state, monkeypatch):
    monkeypatch.setenv("AIRFLOW_VAR_ZUORA_ETL_ALERT_DEAD_LETTERS_THRESHOLD", "1")
    state.dead_letter("r1", "crm_accounts", "accounts", "load", [("a1", "refused", None), ("a2", "refused", None)])
    state.resolve_dead_letters("crm_accounts", "accounts", ["a2"], "loaded")
    assert run(state, Sender())["conditions"] == []
    state.dead_letter("r2", "crm_accounts", "accounts", "transform", [("a3", "bad", None)])
    assert run(state, Sender())["conditions"] == ["dead_letters:crm_accounts:accounts"]


def test_a_channel_down_fails_the_check_but_what_reached_another_channel_is_remembered(state):
    stale = {"zuora_hwm__crm_accounts__accounts": (NOW - timedelta(hours=4)).isoformat()}
    partly = Sender({"zuora_alerts_webhook": "sent", "zuora_alerts_smtp": "ConnectionRefusedError: x"})
    with pytest.raises(AirflowException, match="not delivered to every channel"):
        run(state, partly, stale)
    assert [r["key"] for r in SentAlerts(engine=state.engine).rows()] == ["watermark_lag:crm_accounts:accounts"]
    SentAlerts(engine=state.engine).forget(["watermark_lag:crm_accounts:accounts"])
    with pytest.raises(AirflowException):
        run(state, Sender({"zuora_alerts_webhook": "TimeoutError: y"}), stale)
    assert SentAlerts(engine=state.engine).rows() == []  # nobody got it: sent again next check


@pytest.mark.parametrize("value", ["-1", "many"])
def test_a_bad_threshold_variable_fails_without_retry(state, monkeypatch, value):
    monkeypatch.setenv("AIRFLOW_VAR_ZUORA_ETL_ALERT_WATERMARK_LAG_MINUTES", value)
    with pytest.raises(AirflowFailException, match="zuora_etl_alert_watermark_lag_minutes"):
        run(state, Sender())
