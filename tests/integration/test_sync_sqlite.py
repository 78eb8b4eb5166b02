"""Every sync DAG, run for real with dag.test() against the emulator into SQLite: the sink equals
Zuora under the family's filters, then again after Zuora changes, with watermarks advanced and no
record version written twice."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from zuora_etl.families import get_family, load_families
from zuora_etl.state import StateStore, ledger
from zuora_etl.windows import parse_instant

from tests.integration.mutations import mutate
from tests.sync_harness import assert_family_matches

FAMILIES = [f.family for f in load_families()]


def ledger_rows(env) -> list[dict]:
    state = StateStore(engine=env.engine("zuora_etl_state"))
    with state.engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(ledger)).mappings()]


def assert_no_version_written_twice(rows: list[dict]) -> None:
    written = Counter((r["object"], r["record_id"], r["updated_date"]) for r in rows if r["outcome"] == "loaded")
    twice = [k for k, n in written.items() if n > 1]
    assert not twice, f"{len(twice)} record versions loaded more than once, e.g. {twice[:3]}"


def check_sync(env, family_name: str) -> None:
    family = get_family(family_name)
    assert env.run(family.dag_id) == "success"
    first = assert_family_matches(env, family_name)
    assert all(first.values()), f"an object loaded nothing: {first}"
    windowed = [o for o in family.objects if not o.parent]
    for o in windowed:
        assert env.watermark(family.family, o.name), f"no watermark for {o.name}"

    change = mutate(env.emu, family)
    assert env.run(family.dag_id) == "success"
    assert_family_matches(env, family_name)
    second = datetime.fromtimestamp(change["second"], UTC)
    for o in windowed:
        assert parse_instant(env.watermark(family.family, o.name)) >= second, f"{o.name} watermark did not advance"
    rows = ledger_rows(env)
    assert_no_version_written_twice(rows)
    runs = sorted({r["run_id"] for r in rows}, key=lambda run: min(x["at"] for x in rows if x["run_id"] == run))
    mutated = {i for res in change["results"] for i in res["ids"]}
    reloaded = {r["record_id"] for r in rows if r["run_id"] == runs[-1] and r["outcome"] == "loaded"}
    # The second run writes only what changed in Zuora: the overlap and the documents it flagged in
    # the first run come back unchanged.
    assert reloaded and reloaded <= mutated, f"{len(reloaded - mutated)} unchanged records written again"


@pytest.mark.parametrize("family_name", FAMILIES)
def test_sync_into_sqlite_converges(env, family_name):
    check_sync(env, family_name)


def test_dry_run_loads_nothing_and_keeps_watermarks(env):
    assert env.run("zuora_crm_accounts", {"dry_run": True}) == "success"
    assert env.watermark("crm_accounts", "accounts") is None
    with env.engine("zuora_crm_sink").connect() as conn:
        assert not sa.inspect(conn).has_table("accounts")
    runs = StateStore(engine=env.engine("zuora_etl_state")).runs("crm_accounts")
    assert {r["status"] for r in runs} == {"dry_run"} and all(r["rows_extracted"] > 0 for r in runs)


def test_backfill_params_load_the_range_and_leave_watermarks(env):
    assert env.run("zuora_crm_invoices", {"start": "2026-01-01", "end": "2026-03-31"}) == "success"
    assert env.watermark("crm_invoices", "invoices") is None
    with env.engine("zuora_crm_sink").connect() as conn:
        dates = conn.execute(sa.text("SELECT min(updated_date), max(updated_date), count(*) FROM invoices")).one()
    assert dates[2] > 0
    assert str(dates[0]) >= "2026-01-01" and str(dates[1]) < "2026-04-01"


def test_malformed_records_are_quarantined_not_dropped(env):
    bad = env.emu.store.truth("invoices")[:2]
    env.emu.store.mutate([{"op": "update", "object": "invoices", "ids": [r["id"] for r in bad],
                           "set": {"amount": "twelve", "invoiceDate": "2026-02-30"}}], at=time.time() - 1)  # fmt: skip
    assert env.run("zuora_crm_invoices") == "failed", "records left in dead letters: the run is not green"
    state = StateStore(engine=env.engine("zuora_etl_state"))
    letters = state.open_dead_letters("crm_invoices", "invoices")
    assert {d["record_id"] for d in letters} == {r["id"] for r in bad}
    assert all("twelve" in d["payload"] and d["stage"] == "transform" for d in letters)
    assert all("amount: 'twelve'" in d["reason"] and "invoiceDate: '2026-02-30'" in d["reason"] for d in letters)
    runs = {r["object"]: r for r in state.runs("crm_invoices")}
    assert runs["invoices"]["rows_quarantined"] == 2 and runs["invoices"]["status"] == "partial"
    assert runs["invoices"]["rows_loaded"] == runs["invoices"]["rows_extracted"] - 2

    # Zuora's data is corrected: the next run reads them again, loads them and closes their letters.
    env.emu.store.mutate([{"op": "update", "object": "invoices", "ids": [r["id"] for r in bad],
                           "set": {"amount": 12.5, "invoiceDate": "2026-02-28"}}], at=time.time() - 1)  # fmt: skip
    assert env.run("zuora_crm_invoices") == "success"
    assert not state.open_dead_letters("crm_invoices")
    assert_family_matches(env, "crm_invoices")
