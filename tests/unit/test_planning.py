from __future__ import annotations

from datetime import UTC, datetime

import pytest
from zuora_etl.families import get_family
from zuora_etl.planning import next_watermark, plan_run

NOW = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)


def plan(family="erp_invoices", params=None, run_type="manual", interval=(None, None), variables=None):
    variables = variables or {}
    return plan_run(get_family(family), params or {}, run_type, interval, NOW, variables.get)


def test_first_sync_reads_whole_history_up_to_now_minus_settle():
    p = plan()
    assert p["mode"] == "sync"
    windows = p["objects"]["invoices"]["windows"]
    assert windows == [{"lo": None, "hi": "2026-03-10T11:58:00+00:00"}]  # default settle 120 s
    assert p["objects"]["invoice_items"] == {"windows": [], "watermark": None, "by_parent": "invoices"}


def test_watermark_overlap_and_settle_override():
    p = plan(variables={"zuora_hwm__erp_invoices__invoices": "2026-03-10T03:00:00-08:00",
                        "zuora_etl_settle_seconds": "0"})  # fmt: skip
    assert p["objects"]["invoices"]["windows"] == [
        {"lo": "2026-03-10T10:55:00+00:00", "hi": "2026-03-10T12:00:00+00:00"}
    ]
    assert p["objects"]["invoices"]["watermark"] == "2026-03-10T03:00:00-08:00"


def test_initial_watermark_variable_starts_a_first_load():
    p = plan(variables={"zuora_etl_initial_watermark": "2026-01-01"})
    assert p["objects"]["invoices"]["windows"][0]["lo"] == "2026-01-01T00:00:00+00:00"


def test_bad_initial_watermark_fails_the_plan():
    with pytest.raises(ValueError):
        plan(variables={"zuora_etl_initial_watermark": "last tuesday"})


def test_start_end_params_make_a_backfill():
    p = plan(params={"start": "2026-01-01", "end": "2026-01-31"})
    assert p["mode"] == "backfill"
    assert p["objects"]["invoices"]["windows"] == [
        {"lo": "2026-01-01T00:00:00+00:00", "hi": "2026-02-01T00:00:00+00:00"}
    ]


def test_end_without_start_is_refused():
    with pytest.raises(ValueError, match="start"):
        plan(params={"end": "2026-01-31"})


def test_backfill_run_reads_its_data_interval():
    interval = (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 1, 1, tzinfo=UTC))
    p = plan(run_type="backfill", interval=interval)
    assert p["mode"] == "backfill"
    assert p["objects"]["invoices"]["windows"] == [
        {"lo": "2026-02-01T00:00:00+00:00", "hi": "2026-02-01T01:00:00+00:00"}
    ]


def test_dry_run_mode():
    assert plan(params={"dry_run": True})["mode"] == "dry_run"


@pytest.mark.parametrize(
    ("current", "newest", "expected"),
    [
        (None, "2026-05-01T10:00:00-07:00", "2026-05-01T10:00:00-07:00"),
        (None, "2099-01-01T00:00:00Z", "2026-06-01T00:00:00+00:00"),  # never past the window read
        ("2026-05-02T00:00:00Z", "2026-05-01T00:00:00Z", "2026-05-02T00:00:00Z"),  # never backwards
        ("2026-05-02T00:00:00Z", None, "2026-05-02T00:00:00Z"),
    ],
)
def test_next_watermark(current, newest, expected):
    windows = [{"lo": None, "hi": "2026-05-15T00:00:00+00:00"}, {"lo": None, "hi": "2026-06-01T00:00:00+00:00"}]
    assert next_watermark(current, newest, windows) == expected
