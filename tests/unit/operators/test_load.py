"""ZuoraSinkOperator on its own: loads, and in a dry run compares and writes nothing."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from airflow.sdk.exceptions import AirflowFailException
from zuora_etl.operators.extract import ZuoraObjectQueryOperator
from zuora_etl.operators.load import ZuoraSinkOperator
from zuora_etl.state import StateStore
from zuora_etl.windows import Window

from tests.unit.operators.conftest import context, everything


def chain(run_id: str, mode: str = "sync") -> dict:
    ctx = context(run_id)
    extracted = ZuoraObjectQueryOperator(task_id="extract", family="crm_invoices", zuora_object="invoices",
                                         windows=everything(), transform=True).execute(ctx)  # fmt: skip
    return ZuoraSinkOperator(task_id="load", family="crm_invoices", zuora_object="invoices", manifest=extracted,
                             sink_conn_id="zuora_crm_sink", plan={"mode": mode}).execute(ctx)  # fmt: skip


def tables(env) -> list[str]:
    return sa.inspect(env.engine("zuora_crm_sink")).get_table_names()


def test_a_dry_run_into_an_empty_target_counts_inserts_and_creates_nothing(env):
    result = chain("dry-1", "dry_run")
    total = len(env.emu.store.truth("invoices"))
    assert result["dry_run"] and (result["inserted"], result["updated"], result["unchanged"]) == (total, 0, 0)
    assert "invoices" not in tables(env)
    assert StateStore().runs() == [] and StateStore().pending("crm_invoices", "invoices") == []


def test_a_dry_run_after_a_load_reports_the_changes_field_by_field(env):
    first = chain("load-1")
    assert first["loaded"] == len(env.emu.store.truth("invoices")) and not first["dry_run"]
    changed = env.emu.store.truth("invoices")[:2]
    env.emu.store.mutate([{"op": "update", "object": "invoices", "ids": [r["id"] for r in changed],
                           "set": {"balance": 42.5}}])  # fmt: skip
    with env.engine("zuora_crm_sink").connect() as conn:
        before = conn.execute(sa.text("SELECT count(*), sum(balance) FROM invoices")).one()
    result = chain("dry-2", "dry_run")
    assert (result["inserted"], result["updated"]) == (0, 2)
    assert result["unchanged"] == len(env.emu.store.truth("invoices")) - 2
    diff = {d["id"]: d["changes"] for d in result["differences"]}
    assert set(diff) == {r["id"] for r in changed}
    assert all(float(c["balance"][1]) == 42.5 and "updated_date" in c for c in diff.values())
    with env.engine("zuora_crm_sink").connect() as conn:
        assert conn.execute(sa.text("SELECT count(*), sum(balance) FROM invoices")).one() == before


def load(manifest, **kwargs) -> dict:
    return ZuoraSinkOperator(task_id="load", family="crm_invoices", zuora_object="invoices", manifest=manifest,
                             sink_conn_id="zuora_crm_sink", **kwargs).execute(context("systemic"))  # fmt: skip


def slices(*borders: datetime) -> list[dict]:
    """The invoices read and mapped by mapped extracts, one per time slice between `borders`."""
    edges = [datetime(2000, 1, 1, tzinfo=UTC), *borders, datetime.now(UTC) + timedelta(hours=1)]
    return [
        ZuoraObjectQueryOperator(task_id="extract", family="crm_invoices", zuora_object="invoices",
                                 window=Window(lo, hi).to_dict(), transform=True).execute(context("systemic", i))
        for i, (lo, hi) in enumerate(itertools.pairwise(edges))
    ]  # fmt: skip


def nothing_written(env) -> bool:
    state = StateStore()
    letters = state.open_dead_letter_ids("crm_invoices", "invoices")
    return "invoices" not in tables(env) and not letters and state.pending("crm_invoices", "invoices") == []


def test_a_field_failing_most_records_fails_the_load_before_anything_is_written(env, strict_status):
    env.emu.store.mutate([{"op": "update", "object": "invoices", "count": 1000, "set": {"status": "Bogus"}}])
    with pytest.raises(AirflowFailException, match="fail on status"):
        load(slices())
    assert nothing_written(env)


def test_failures_spread_over_mapped_slices_are_judged_for_the_object_as_a_whole(env, strict_status):
    """Each slice alone stays under the minimum of failed rows; the object does not."""
    now = datetime.now(UTC).replace(microsecond=0)
    ids = [r["id"] for r in env.emu.store.truth("invoices")][:900]
    for n, hours in enumerate((3, 2, 1)):  # three groups of 300, an hour apart
        group = ids[n * 300 : (n + 1) * 300]
        env.emu.store.mutate([{"op": "update", "object": "invoices", "ids": group, "set": {"status": "Bogus"}}],
                             at=int((now - timedelta(hours=hours)).timestamp()))  # fmt: skip
    parts = slices(now - timedelta(minutes=150), now - timedelta(minutes=90))
    assert [p["quarantined"] for p in parts] == [300, 300, 300]
    with pytest.raises(AirflowFailException, match="fail on status"):
        load(parts, systemic_reject_min_rows=301)
    assert nothing_written(env)


def test_a_manifest_the_extract_did_not_map_is_refused(env):
    extracted = ZuoraObjectQueryOperator(task_id="extract", family="crm_invoices", zuora_object="invoices",
                                         windows=everything()).execute(context("raw"))  # fmt: skip
    with pytest.raises(AirflowFailException, match="did not map"):
        load(extracted)
