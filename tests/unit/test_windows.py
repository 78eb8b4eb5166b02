from __future__ import annotations

import itertools
from datetime import UTC, datetime

import pytest
from zuora_etl.windows import Window, hwm_variable, incremental_window, parse_instant, range_window, zuora_instant

NOW = datetime(2026, 3, 10, 12, 0, 30, 500000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-03-21T03:24:15-07:00", datetime(2025, 3, 21, 10, 24, 15, tzinfo=UTC)),
        ("2025-03-21T10:24:15Z", datetime(2025, 3, 21, 10, 24, 15, tzinfo=UTC)),
        ("2025-03-21", datetime(2025, 3, 21, tzinfo=UTC)),
        ("2025-03-21 10:24:15", datetime(2025, 3, 21, 10, 24, 15, tzinfo=UTC)),
    ],
)
def test_parse_instant(text, expected):
    assert parse_instant(text) == expected


def test_parse_instant_rejects_garbage():
    with pytest.raises(ValueError, match="not an ISO-8601"):
        parse_instant("yesterday")


def test_zuora_instant_has_no_plus_and_no_space():
    text = zuora_instant(datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC))
    assert text == "2025-01-02T03:04:05Z"


def test_watermark_variable_name_follows_the_contract():
    assert hwm_variable("erp_invoices", "invoices") == "zuora_hwm__erp_invoices__invoices"


@pytest.mark.parametrize(
    ("watermark", "initial", "lo"),
    [
        ("2026-03-10T04:00:00-08:00", None, datetime(2026, 3, 10, 11, 55, tzinfo=UTC)),  # minus 300 s overlap
        (None, "2026-01-01", datetime(2026, 1, 1, tzinfo=UTC)),
        (None, None, None),  # whole history
    ],
)
def test_incremental_window(watermark, initial, lo):
    w = incremental_window(watermark, initial, NOW, overlap_s=300, settle_s=30)
    assert w.lo == lo
    assert w.hi == datetime(2026, 3, 10, 12, 0, 0, tzinfo=UTC)  # now - settle, floored to the second


def test_incremental_window_is_none_when_nothing_can_be_read_yet():
    assert incremental_window("2026-03-10T12:10:00Z", None, NOW, overlap_s=0, settle_s=0) is None


def test_filters_bound_the_window_and_cover_history():
    assert Window(None, NOW.replace(microsecond=0)).filters() == [
        "updatedDate.GE:1970-01-01T00:00:00Z",
        "updatedDate.LT:2026-03-10T12:00:30Z",
    ]


@pytest.mark.parametrize("n", [1, 2, 3, 7])
def test_split_covers_the_window_without_gaps(n):
    w = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 8, tzinfo=UTC))
    slices = w.split(n)
    assert len(slices) == n
    assert slices[0].lo == w.lo and slices[-1].hi == w.hi
    assert all(a.hi == b.lo for a, b in itertools.pairwise(slices))


def test_split_of_whole_history_keeps_an_open_start():
    slices = Window(None, datetime(2026, 1, 1, tzinfo=UTC)).split(3)
    assert slices[0].lo is None and slices[1].lo is not None


def test_range_window_with_a_bare_end_date_includes_that_day():
    w = range_window("2026-01-01", "2026-01-31", NOW)
    assert w.lo == datetime(2026, 1, 1, tzinfo=UTC) and w.hi == datetime(2026, 2, 1, tzinfo=UTC)
    assert range_window("2026-01-01T06:00:00Z", None, NOW).hi == NOW.replace(microsecond=0)


@pytest.mark.parametrize(
    ("start", "end"), [("2026-02-01", "2026-01-01"), ("2026-02-01T00:00:00Z", "2026-02-01T00:00:00Z")]
)
def test_range_window_rejects_an_empty_range(start, end):
    with pytest.raises(ValueError):
        range_window(start, end, NOW)


def test_window_round_trips_through_xcom_dicts():
    w = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC))
    assert Window.from_dict(w.to_dict()) == w


def records_in(w: Window, minutes: dict[int, int]) -> int:
    """Records of a per-minute count inside `w`, a minute's records spread evenly over its seconds."""
    lo = w.lo.timestamp() if w.lo else float("-inf")
    return round(sum(n * sum(lo <= m * 60 + s < w.hi.timestamp() for s in range(60)) / 60 for m, n in minutes.items()))


@pytest.mark.parametrize("lo", [datetime(2026, 1, 1, tzinfo=UTC), None])
def test_a_counted_window_is_split_into_equal_volumes_and_bursts_are_cut(lo):
    """A bill run writes 12,000 records in one minute, against 10 a minute otherwise: time slices
    would give one slice nearly everything; count slices cut the burst itself."""
    base = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp()) // 60
    minutes = {base + i: 10 for i in range(0, 7 * 1440, 7)}  # a quiet week, 1,440 minutes counted
    minutes[base + 3 * 1440 + 1] = 12_000  # the bill run
    w = Window(lo, datetime(2026, 1, 8, tzinfo=UTC))
    slices = w.split_by_counts(sorted(minutes.items()), 12)
    assert slices[0].lo == w.lo and slices[-1].hi == w.hi
    assert all(a.hi == b.lo and a.hi.microsecond == 0 for a, b in itertools.pairwise(slices))
    share = sum(minutes.values()) / 12
    volumes = [records_in(s, minutes) for s in slices]
    assert sum(volumes) == sum(minutes.values())
    assert max(volumes) <= 1.1 * share  # the burst minute is cut into 60 / 9 = 6.7 s parts
    assert len(slices) <= 3 * 12


def test_a_window_without_counts_is_split_by_time():
    w = Window(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 8, tzinfo=UTC))
    assert w.split_by_counts([], 4) == w.split(4)
    assert w.split_by_counts([(29_000_000, 5)], 1) == [w]
