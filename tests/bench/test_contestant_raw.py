"""The raw limit's paging against the emulator over loopback HTTP: a single cursor that renews its
token when Zuora refuses it (a 1M-item read at 0.3 s a page outlives the token's hour)."""

from __future__ import annotations

import requests

from bench.common import OBJECTS, fetch_token
from bench.contestant_raw import page_all


def test_the_single_cursor_renews_an_expired_token_and_reads_every_record(shared_emulator):
    base = shared_emulator.base_url
    endpoint = dict(OBJECTS)["invoices"]
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {fetch_token(base, session)}"
    want = len(page_all(session, base, endpoint, ["id", "updatedDate"]))
    shared_emulator.set_faults({"rules": [{"kind": "token_expiry", "every": 5, "match": "/object-query/invoices"}]})
    try:
        rows = page_all(session, base, endpoint, ["id", "updatedDate"])
    finally:
        shared_emulator.set_faults({})
    assert len(rows) == len({r[0] for r in rows}) == want > 5 * 99
