"""Threshold alerts fire above their thresholds, stay quiet at or below, and re-alert on schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from zuora_etl.alerts.thresholds import (
    Condition,
    condition_alert,
    dead_letter_conditions,
    due,
    ended,
    watermark_lag_conditions,
)

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("counts", "threshold", "fired"),
    [
        ({}, 0, []),
        ({("erp_invoices", "invoices", "load"): 5}, 5, []),
        ({("erp_invoices", "invoices", "load"): 6}, 5, ["dead_letters:erp_invoices:invoices"]),
        ({("erp_invoices", "invoices", "load"): 3, ("erp_invoices", "invoices", "transform"): 3}, 5,
         ["dead_letters:erp_invoices:invoices"]),
        ({("erp_invoices", "invoices", "load"): 3, ("erp_memos", "invoices", "transform"): 3}, 5, []),
        ({("crm_accounts", "accounts", "transform"): 1}, 0, ["dead_letters:crm_accounts:accounts"]),
    ],
)  # fmt: skip
def test_dead_letters_fire_only_above_the_threshold(counts, threshold, fired):
    assert [c.key for c in dead_letter_conditions(counts, threshold)] == fired


def test_a_dead_letter_condition_says_what_was_left_and_why():
    (c,) = dead_letter_conditions({("f", "o", "transform"): 2, ("f", "o", "load"): 4, ("f", "o", "mark"): 1}, 3)
    assert c.detail == "7 open dead letters (4 refused, 1 not flagged in Zuora, 2 quarantined), above the threshold 3"


@pytest.mark.parametrize(
    ("watermark", "last_read", "fired"),
    [
        (NOW - 2 * H, None, False),  # inside the allowed 3 h
        (NOW - 3 * H, None, False),  # exactly at the limit
        (NOW - 3 * H - timedelta(seconds=1), None, True),
        (NOW - 10 * H, NOW - H, False),  # no changes in Zuora, but the last sync read up to an hour ago
        (NOW - 10 * H, NOW - 5 * H, True),  # and no sync for five hours either
        (None, None, False),  # never synced: the first load has not happened
        (None, NOW - 4 * H, True),
    ],
)
def test_watermark_lag_fires_only_when_data_is_older_than_allowed(watermark, last_read, fired):
    found = watermark_lag_conditions({("crm_accounts", "accounts"): (watermark, last_read)}, NOW, 3 * H)
    assert [c.key for c in found] == (["watermark_lag:crm_accounts:accounts"] if fired else [])


def test_a_lag_condition_names_how_far_behind():
    (c,) = watermark_lag_conditions({("f", "o"): (NOW - timedelta(hours=5, minutes=7), None)}, NOW, 3 * H)
    assert "5 h 7 min behind now, allowed 3 h 0 min" in c.detail
    assert "watermark 2026-03-01T06:53:00+00:00" in c.detail


def cond(key_object: str) -> Condition:
    return Condition("watermark_lag", "f", key_object, "d", 1, 0)


def test_a_condition_is_sent_when_it_starts_and_again_after_the_realert_interval():
    a, b, c = cond("a"), cond("b"), cond("c")
    sent = {a.key: NOW - timedelta(minutes=30), b.key: NOW - timedelta(hours=4)}
    assert due([a, b, c], sent, NOW, timedelta(hours=4)) == [b, c]  # a: sent 30 min ago; c: new
    assert due([a], sent, NOW, timedelta(0)) == [a]  # no interval: every check


def test_a_condition_that_ends_is_forgotten():
    a, b = cond("a"), cond("b")
    assert ended([a], {a.key: NOW, b.key: NOW, "dead_letters:x:y": NOW}) == ["dead_letters:x:y", b.key]
    assert ended([], {}) == []


def test_a_condition_alert_names_family_object_condition_and_link():
    (c,) = dead_letter_conditions({("erp_invoices", "invoices", "load"): 9}, 1)
    alert = condition_alert(c, "zuora_watch", "scheduled__x", "http://ui/dags/zuora_watch/runs/r/tasks/check")
    assert alert.kind == "dead_letters"
    assert alert.fields["family"] == "erp_invoices" and alert.fields["object"] == "invoices"
    assert alert.fields["condition"].startswith("9 open dead letters")
    assert alert.fields["log"].endswith("/tasks/check") and "erp_invoices.invoices" in alert.title
