"""logfmt: the task-log line format of pages and batches."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from zuora_etl.logfmt import logfmt


@pytest.mark.parametrize(
    ("fields", "line"),
    [
        ({"object": "invoices", "records": 99}, "page object=invoices records=99"),
        ({"read": "window[a, b)"}, 'page read="window[a, b)"'),
        ({"reason": 'say "no"'}, 'page reason="say \\"no\\""'),
        ({"query": "a=b"}, 'page query="a=b"'),
        ({"empty": ""}, 'page empty=""'),
        ({"request_id": None, "ms": 12}, "page ms=12"),
        ({"seconds": 1.5}, "page seconds=1.5"),
        ({"seconds": 2.0}, "page seconds=2"),
        ({"at": datetime(2026, 12, 1, tzinfo=UTC)}, "page at=2026-12-01T00:00:00+00:00"),
    ],
)
def test_fields_render_as_key_value_pairs(fields, line):
    assert logfmt("page", **fields) == line
