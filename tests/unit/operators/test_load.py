"""ZuoraSinkOperator on its own: loads, and in a dry run compares and writes nothing."""

from __future__ import annotations

import sqlalchemy as sa
from zuora_etl.operators.extract import ZuoraObjectQueryOperator
from zuora_etl.operators.load import ZuoraSinkOperator
from zuora_etl.operators.transform import ZuoraTransformOperator
from zuora_etl.state import StateStore

from tests.unit.operators.conftest import context, everything


def chain(run_id: str, mode: str = "sync") -> dict:
    ctx = context(run_id)
    extracted = ZuoraObjectQueryOperator(task_id="extract", family="crm_invoices", zuora_object="invoices",
                                         windows=everything()).execute(ctx)  # fmt: skip
    transformed = ZuoraTransformOperator(task_id="transform", zuora_object="invoices", manifest=extracted).execute(ctx)
    return ZuoraSinkOperator(task_id="load", family="crm_invoices", zuora_object="invoices", manifest=transformed,
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
