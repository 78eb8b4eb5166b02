"""ZuoraMarkTransferredOperator on its own: flags exactly what the target accepted, stages the
flagged ids, never flags twice on a retry, skips a dry run."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowSkipException
from zuora_etl.operators.extract import ZuoraObjectQueryOperator
from zuora_etl.operators.load import ZuoraSinkOperator
from zuora_etl.operators.mark import ZuoraMarkTransferredOperator
from zuora_etl.pipeline import read_ids

from tests.unit.operators.conftest import context, everything

POSTED = ["status.EQ:Posted"]
FLAG = "transferredToAccounting"


def loaded(mode: str = "sync") -> dict:
    """Every invoice read (no source filter), Posted ones delivered, as the erp_invoices family does."""
    ctx = context("mark-run")
    common = {"family": "erp_invoices", "zuora_object": "invoices"}
    extracted = ZuoraObjectQueryOperator(task_id="e", windows=everything(), extra_fields=[FLAG, "status"],
                                         transform=True, carry=["status", FLAG], **common).execute(ctx)  # fmt: skip
    return ZuoraSinkOperator(task_id="l", manifest=extracted, sink_conn_id="zuora_erp_sink", plan={"mode": mode},
                             deliver_if=POSTED, flag_field=FLAG, **common).execute(ctx)  # fmt: skip


def mark(manifest: dict, try_number: int = 1) -> dict:
    ctx = {"run_id": "mark-run", "ti": SimpleNamespace(map_index=-1, try_number=try_number)}
    op = ZuoraMarkTransferredOperator(task_id="m", family="erp_invoices", zuora_object="invoices", manifest=manifest)
    return op.execute(ctx)


def test_flags_the_accepted_documents_only_and_stages_their_ids(env):
    manifest = loaded()
    drafts = [r["id"] for r in env.emu.store.truth("invoices") if r["status"] != "Posted"]
    assert drafts and manifest["skipped"] == len(drafts)  # read, never delivered
    result = mark(manifest)
    posted = [r for r in env.emu.store.truth("invoices") if r["status"] == "Posted"]
    assert result["marked"] == len(posted) and result["mark_failed"] == 0
    assert sorted(read_ids(result["parts"])) == sorted(r["id"] for r in posted)
    flags = {r["id"]: r[FLAG] for r in env.emu.store.truth("invoices")}
    assert all(flags[r["id"]] == "Yes" for r in posted)
    assert all(flags[i] != "Yes" for i in drafts)


@pytest.mark.parametrize("ledger_lost", [False, True])
def test_a_retried_mark_never_flags_twice(env, ledger_lost):
    """A first try that flagged some batches (ledgered) or whose ledger write was lost after Zuora
    accepted (only Zuora knows): the retry flags only what is left."""
    manifest = loaded()
    first = mark(manifest)
    calls_before = env.emu.stats.requests.get("action-update", 0)
    if ledger_lost:  # the ledger lost what the first try flagged: the retry asks Zuora
        from zuora_etl.state import StateStore, ledger

        with StateStore().engine.begin() as conn:
            conn.execute(ledger.delete().where(ledger.c.outcome == "flagged"))
    again = mark(manifest, try_number=2)
    assert first["marked"] > 0 and again["marked"] == 0
    assert env.emu.stats.requests.get("action-update", 0) == calls_before


def test_a_dry_run_flags_nothing(env):
    op = ZuoraMarkTransferredOperator(task_id="m", family="erp_invoices", zuora_object="invoices",
                                      manifest=loaded("dry_run"), plan={"mode": "dry_run"})  # fmt: skip
    with pytest.raises(AirflowSkipException):
        op.execute(context("mark-run"))
    assert not any(r[FLAG] == "Yes" for r in env.emu.store.truth("invoices"))
