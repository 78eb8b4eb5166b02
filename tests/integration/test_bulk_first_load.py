"""A first load by Data Query export, run for real with dag.test(): the target equals Zuora, the
watermark stops an hour before the export's snapshot, and the next (incremental) run reads on by
Object Query and converges after Zuora changes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from zuora_etl.families import get_family
from zuora_etl.settings import BULK_WATERMARK_MARGIN
from zuora_etl.state import StateStore
from zuora_etl.windows import parse_instant

from tests.integration.mutations import mutate
from tests.sync_harness import assert_family_matches


@pytest.mark.parametrize("family_name", ["crm_invoices", "erp_invoices"])
def test_a_bulk_first_load_equals_zuora_and_the_next_sync_reads_on(env, family_name):
    family = get_family(family_name)
    # One invoice changed a second ago: the export reads it, but the watermark must stay an hour back.
    fresh = env.emu.store.truth("invoices")[0]["id"]
    env.emu.store.mutate([{"op": "update", "object": "invoices", "ids": [fresh], "set": {}}], at=time.time() - 1)
    env.emu.stats.reset()
    before = datetime.now(UTC)
    assert env.run(family.dag_id, {"bulk": "always"}) == "success"
    after = datetime.now(UTC)
    counts = assert_family_matches(env, family_name)
    assert counts["invoices"] > 0 and counts["invoice_items"] > 0

    requests = env.emu.stats_view()["requests"]
    runs = {r["object"]: r for r in StateStore(engine=env.engine("zuora_etl_state")).runs(family.family)}
    assert requests.get("query-jobs", 0) > 0, requests
    if family_name == "crm_invoices":  # nothing flagged, nothing read back: no Object Query page at all
        assert requests.get("object-query", 0) == 0, requests
        exports = sum(runs[o]["api_calls"] for o in ("invoices", "invoice_items"))
        pages = -(-counts["invoices"] // 99) + -(-counts["invoice_items"] // 99)
        assert exports <= 30 < pages, (exports, pages)  # a few calls per export job, not one per 99 records

    watermark = parse_instant(env.watermark(family.family, "invoices"))
    margin = BULK_WATERMARK_MARGIN
    assert before - margin - timedelta(seconds=5) <= watermark <= after - margin, watermark

    change = mutate(env.emu, family)
    assert env.run(family.dag_id) == "success"  # bulk auto: an incremental window is read by Object Query
    assert_family_matches(env, family_name)
    assert parse_instant(env.watermark(family.family, "invoices")) >= datetime.fromtimestamp(change["second"], UTC)
