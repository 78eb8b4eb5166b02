"""Pure pieces of the pipeline: when an object's rejections are systemic."""

from __future__ import annotations

import pytest
from zuora_etl.pipeline import systemic_failure


def result(rows: int, failures: dict[str, int]) -> dict:
    column_failures = {c: {"records": n, "sample": f"{c}: value not allowed"} for c, n in failures.items()}
    return {"object": "invoices", "rows_in": rows, "column_failures": column_failures}


@pytest.mark.parametrize(
    ("rows", "failures", "systemic"),
    [
        (1723, {"postedDate": 1723}, True),  # every Posted invoice fails one column
        (100, {"status": 50}, True),  # half, at the default ratio
        (100, {"status": 49}, False),
        (10, {"status": 10}, False),  # fewer than the minimum: dead-lettered record by record
        (1000, {"a": 300, "b": 300}, False),  # many bad records, no column failing most of them
    ],
)
def test_systemic_failure(rows, failures, systemic):
    why = systemic_failure(result(rows, failures), 0.5, 20)
    assert bool(why) is systemic
    if why:
        column = next(iter(failures))
        assert f"fail on {column}" in why and "value not allowed" in why and "no watermark moved" in why
