from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta

import pytest
from zuora_etl.families import get_family
from zuora_etl.planning import (
    Counted,
    advance_watermarks,
    backfill_block,
    next_watermark,
    plan_run,
    slice_count,
    slice_groups,
    thread_count,
)
from zuora_etl.settings import (
    BULK_MIN_RECORDS,
    BULK_ROWS_PER_EXPORT,
    FIRST_LOAD_SLICES,
    MAX_IN_FLIGHT_PER_PROCESS,
    MAX_SLICES,
    SLICE_TARGET_ROWS,
    SUBSLICE_TARGET_ROWS,
    WINDOWS_PER_THREAD,
)
from zuora_etl.windows import Window

NOW = datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)


def plan(family="erp_invoices", params=None, run_type="manual", interval=(None, None), variables=None, **kw):
    variables = variables or {}
    return plan_run(get_family(family), params or {}, run_type, interval, NOW, variables.get, **kw)


def test_first_sync_reads_whole_history_up_to_now_minus_settle():
    p = plan(params={"slices": 1})
    assert p["mode"] == "sync" and p["force"] is False
    windows = p["objects"]["invoices"]["windows"]
    assert windows == [{"lo": None, "hi": "2026-03-10T11:58:00+00:00"}]  # default settle 120 s
    assert p["objects"]["invoice_items"] == {"windows": [], "watermark": None, "by_parent": "invoices", "id_parts": []}


def test_a_first_load_with_no_history_splits_into_slices():
    windows = plan()["objects"]["invoices"]["windows"]
    assert len(windows) == FIRST_LOAD_SLICES
    assert windows[0]["lo"] is None and windows[-1]["hi"] == "2026-03-10T11:58:00+00:00"
    assert all(a["hi"] == b["lo"] for a, b in itertools.pairwise(windows))


@pytest.mark.parametrize(
    ("density", "hours", "fixed", "expected"),
    [
        (None, 1, None, 1),  # a short window with no history: one slice
        (None, 24 * 60, None, FIRST_LOAD_SLICES),  # a long one: a few
        (1.0, 1, None, 1),  # 3,600 expected records
        (100.0, 24, None, MAX_SLICES),  # 8.6M expected: capped
        (SLICE_TARGET_ROWS * 3 / 3600, 1, None, 3),  # by the expected volume
        (100.0, 24, 2, 2),  # asked for
    ],
)
def test_slice_count(density, hours, fixed, expected):
    window = Window(NOW - timedelta(hours=hours), NOW)
    assert slice_count(window, density, fixed) == expected


def test_slices_follow_the_volume_of_recent_runs():
    p = plan(variables={"zuora_hwm__erp_invoices__invoices": "2026-03-09T12:00:00Z"}, density=lambda _: 1.0)
    invoices = p["objects"]["invoices"]
    # 24 h 5 min at 1 record/s: 86,700 expected; 2 mapped extracts, each reading in 8 threads 32
    # sub-slices (4 a thread), dealt round-robin so that neither task holds only the newest records
    pieces = 2 * MAX_IN_FLIGHT_PER_PROCESS * WINDOWS_PER_THREAD
    assert invoices["tasks"] == 2 and len(invoices["windows"]) == pieces
    groups = slice_groups(invoices)
    assert groups == [invoices["windows"][0::2], invoices["windows"][1::2]]
    assert sorted(w["lo"] for g in groups for w in g) == [w["lo"] for w in invoices["windows"]]


@pytest.mark.parametrize(
    ("density", "hours", "slices", "threads"),
    [
        (None, 24, 1, 1),  # no estimate: one thread
        (1.0, 1, 1, 1),  # 3,600 expected: under one sub-slice
        ((SUBSLICE_TARGET_ROWS * 3 - 1) / 3600, 1, 1, 3),
        (100.0, 24, 8, MAX_IN_FLIGHT_PER_PROCESS),  # capped
    ],
)
def test_thread_count(density, hours, slices, threads):
    assert thread_count(Window(NOW - timedelta(hours=hours), NOW), density, slices) == threads


def test_a_fixed_slice_count_reads_one_cursor_per_slice():
    p = plan(params={"slices": 2}, variables={"zuora_hwm__erp_invoices__invoices": "2026-03-09T12:00:00Z"},
             density=lambda _: 10.0)  # fmt: skip
    assert len(p["objects"]["invoices"]["windows"]) == 2 and "tasks" not in p["objects"]["invoices"]
    assert slice_groups(p["objects"]["invoices"]) == [[w] for w in p["objects"]["invoices"]["windows"]]
    assert slice_groups({"windows": []}) == [[]]


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
    p = plan(params={"start": "2026-01-01", "end": "2026-01-31", "slices": 1})
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
    ("params", "run_type", "message"),
    [
        ({"start": "June 1st"}, "manual", "not an ISO-8601"),
        ({"start": "2026-02-30"}, "manual", "not an ISO-8601"),
        ({"start": "2026-03-01", "end": "2026-02-01"}, "manual", "must be before"),
        ({"start": "2026-02-01"}, "backfill", "already gives each run its own interval"),
    ],
)
def test_ranges_that_cannot_be_read_are_refused_with_the_fix(params, run_type, message):
    interval = (datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match=message):
        plan(params=params, run_type=run_type, interval=interval)


def test_a_data_interval_chosen_in_the_trigger_form_is_a_range():
    interval = (datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC))
    p = plan(interval=interval, chosen_interval=True, params={"slices": 1})
    assert p["mode"] == "backfill" and p["backfill"] == "interval"
    assert p["objects"]["invoices"]["windows"] == [
        {"lo": "2026-01-01T00:00:00+00:00", "hi": "2026-01-03T00:00:00+00:00"}
    ]
    assert plan(interval=interval)["mode"] == "sync"  # an inferred interval is not a request


def test_advance_moves_only_a_sync_and_only_windowed_objects():
    p = plan(params={"slices": 1})
    store: dict[str, str] = {}
    loads = {
        "invoices": {"max_updated": "2026-03-10T11:00:00Z"},
        "invoice_items": {"max_updated": "2026-03-10T11:30:00Z"},
    }
    moved = advance_watermarks(p, loads, store.get, store.__setitem__)
    assert moved == {"invoices": {"from": None, "to": "2026-03-10T11:00:00Z"}}
    assert store == {"zuora_hwm__erp_invoices__invoices": "2026-03-10T11:00:00Z"}
    backfill = plan(params={"start": "2026-01-01", "slices": 1})
    assert advance_watermarks(backfill, loads, store.get, store.__setitem__) == {}


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


@pytest.mark.parametrize(
    ("existing_hours", "me", "expected_end"),
    [
        (range(0, 721), 0, 721),  # the Backfill dialog's 721 hourly runs: the first reads them all
        (range(0, 721), 1, None),  # every other run finds a run before it and reads nothing
        (range(0, 721), 720, None),
        ([*range(0, 5), *range(7, 10)], 7, 10),  # a gap (a run that already existed) starts a new chain
        ([3], 3, 4),  # a lone run reads its own interval
    ],
)
def test_one_run_of_a_backfill_chain_reads_the_whole_chain(existing_hours, me, expected_end):
    base = datetime(2026, 6, 1, tzinfo=UTC)
    ids = {f"backfill__{(base + timedelta(hours=h + 1)).isoformat()}" for h in existing_hours}
    calls: list[int] = []

    def count_runs(run_ids: list[str]) -> int:
        calls.append(len(run_ids))
        return len(ids.intersection(run_ids))

    interval = (base + timedelta(hours=me), base + timedelta(hours=me + 1))
    end = backfill_block(interval, "0 * * * *", count_runs)
    assert end == (base + timedelta(hours=expected_end) if expected_end is not None else None)
    assert len(calls) <= 25 and max(calls) <= 1024


def test_a_first_load_asks_zuora_for_its_volume_and_splits_from_its_first_record():
    first = datetime(2025, 1, 1, tzinfo=UTC)
    asked: list[str] = []

    def probe(name, window):
        asked.append(name)
        return first, 1.0  # 1 record/s: 37M expected over the window -> the most slices

    p = plan(probe=probe)
    windows = p["objects"]["invoices"]["windows"]
    assert asked == ["invoices"] and len(slice_groups(p["objects"]["invoices"])) == MAX_SLICES
    assert windows[0]["lo"] is None and windows[1]["lo"] > "2025-01"  # from the first record, not 2000
    small = plan(probe=lambda name, window: (first, 0.0001))["objects"]["invoices"]["windows"]
    assert len(small) == 1  # a few thousand records: one slice
    unknown = plan(probe=lambda name, window: (first, None))["objects"]["invoices"]["windows"]
    assert len(unknown) == FIRST_LOAD_SLICES and unknown[1]["lo"] > "2025-01"  # more than a page: a few
    synced = plan(variables={"zuora_hwm__erp_invoices__invoices": "2026-03-10T11:00:00Z"}, probe=probe)
    assert asked == ["invoices"] and len(synced["objects"]["invoices"]["windows"]) == 1  # incremental: no probe


def test_a_run_after_an_earlier_backfill_leads_its_own_chain():
    """June 1-2 was backfilled before; a new backfill of June 2-3 must not take the old runs for
    its leader: its first run finds no recorded range holding its interval, and reads its chain."""
    base = datetime(2026, 6, 2, tzinfo=UTC)
    ids = {f"backfill__{(base + timedelta(hours=h)).isoformat()}" for h in range(-24, 25)}  # old and new runs
    interval = (base, base + timedelta(hours=1))
    count = lambda run_ids: len(ids.intersection(run_ids))  # noqa: E731
    assert backfill_block(interval, "0 * * * *", count, lambda lo, hi: False) == base + timedelta(hours=24)
    assert backfill_block(interval, "0 * * * *", count, lambda lo, hi: True) is None


def counter(records: int, total: int | None = None, asked: list | None = None):
    first = datetime(2024, 1, 1, tzinfo=UTC)

    def count(name, window):
        if asked is not None:
            asked.append((name, window.lo))
        return Counted(records, records if total is None else total, first)

    return count


@pytest.mark.parametrize(
    ("bulk", "records", "total", "exported"),
    [
        ("auto", 5_000, BULK_MIN_RECORDS, True),  # invoices few, their items many: the family counts
        ("auto", 50_000, 1_050_000, True),  # a million items: five exports of 210,000
        ("auto", 5_000, BULK_MIN_RECORDS - 1, False),
        ("always", 10, 10, True),
        ("never", 10**7, 10**7, False),
    ],
)
def test_a_first_load_is_exported_when_zuora_counts_enough(bulk, records, total, exported):
    p = plan(params={"bulk": bulk}, count=counter(records, total))
    invoices, items = p["objects"]["invoices"], p["objects"]["invoice_items"]
    assert bool(invoices.get("bulk")) is exported and bool(items.get("bulk")) is exported
    if exported:  # one export job per object and slice of at most 250,000 counted records
        assert len(invoices["windows"]) == (1 if bulk == "always" else math.ceil(total / BULK_ROWS_PER_EXPORT))
    if bulk != "always":
        assert invoices["expected"] == total


def test_a_count_splits_a_long_window_by_its_volume():
    # 300,000 invoices counted since 2024-01-01 (about 26 months): 6 slices of 50,000
    p = plan(params={"bulk": "never"}, count=counter(6 * SLICE_TARGET_ROWS))
    windows = p["objects"]["invoices"]["windows"]
    assert len(slice_groups(p["objects"]["invoices"])) == 6 and windows[1]["lo"].startswith("2024-")


def test_a_long_window_is_counted_even_with_history_and_sliced_by_its_count():
    """An empty day read before the first load (density 0) must not plan the whole history as one
    cursor: the long window is counted, and the count sizes the slices."""
    asked: list = []
    p = plan(params={"bulk": "never"}, density=lambda name: 0.0, count=counter(6 * SLICE_TARGET_ROWS, asked=asked))
    assert ("invoices", None) in asked
    assert len(slice_groups(p["objects"]["invoices"])) == 6


def test_an_incremental_sync_neither_counts_nor_exports():
    asked: list = []
    p = plan(variables={"zuora_hwm__erp_invoices__invoices": "2026-03-10T11:00:00Z"}, count=counter(10**7, asked=asked))
    assert asked == [] and "bulk" not in p["objects"]["invoices"]


def test_without_data_query_the_probe_still_sizes_the_slices():
    p = plan(count=lambda name, window: None, probe=lambda name, window: (datetime(2024, 1, 1, tzinfo=UTC), None))
    assert "bulk" not in p["objects"]["invoices"] and len(p["objects"]["invoices"]["windows"]) == FIRST_LOAD_SLICES


def test_a_count_minute_by_minute_places_the_slices_where_the_records_are():
    """The Data Query count carries records per minute: a first load's slices follow them, so the
    mapped tasks and threads share a month-end bill run instead of one cursor reading all of it."""
    first = datetime(2024, 1, 1, tzinfo=UTC)
    start = int(first.timestamp()) // 60
    minutes = tuple((start + 43_200 * month, 25_000) for month in range(24))  # a bill run a month
    total = 25_000 * 24

    def count(name, window):
        return Counted(total, total, first, minutes)

    p = plan(params={"bulk": "never"}, count=count)
    windows = [Window.from_dict(w) for w in p["objects"]["invoices"]["windows"]]
    assert len(slice_groups(p["objects"]["invoices"])) == MAX_SLICES
    run_minutes = {m * 60 for m, _ in minutes}
    holding = [sum(1 for t in run_minutes if (w.lo is None or w.lo.timestamp() <= t) and t < w.hi.timestamp())
               for w in windows]  # fmt: skip
    # every bill run's first second starts a slice of its own, and no slice holds two runs
    assert max(holding) == 1 and sum(holding) == 24
    assert sum(1 for w in windows if w.lo and w.lo.timestamp() in run_minutes) == 24
