"""The sync DAG's wiring that is not plain planning: telling a data interval typed into the trigger
form from the one Airflow infers."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.timetables.interval import CronDataIntervalTimetable
from zuora_etl.dag_factory import chose_interval

DAG = SimpleNamespace(timetable=CronDataIntervalTimetable("0 * * * *", timezone="UTC"))
LOGICAL = datetime(2026, 6, 10, 12, 34, tzinfo=UTC)


@pytest.mark.parametrize(
    ("run_type", "start", "end", "chosen"),
    [
        ("manual", datetime(2026, 6, 10, 11, tzinfo=UTC), datetime(2026, 6, 10, 12, tzinfo=UTC), False),  # inferred
        ("manual", datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 3, tzinfo=UTC), True),  # typed in the form
        ("scheduled", datetime(2026, 6, 1, tzinfo=UTC), datetime(2026, 6, 3, tzinfo=UTC), False),
        ("manual", None, None, False),  # a run without a logical date has no interval
    ],
)
def test_a_data_interval_typed_in_the_trigger_form_is_told_from_the_inferred_one(run_type, start, end, chosen):
    ctx = {"dag": DAG, "data_interval_start": start, "data_interval_end": end,
           "dag_run": SimpleNamespace(run_type=run_type, logical_date=LOGICAL if start else None)}  # fmt: skip
    assert chose_interval(ctx) is chosen
