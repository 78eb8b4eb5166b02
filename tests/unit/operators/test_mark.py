"""ZuoraMarkTransferredOperator on its own: flags what landed, stages the flagged ids, skips a dry run."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowSkipException
from zuora_etl.operators.extract import ZuoraObjectQueryOperator
from zuora_etl.operators.load import ZuoraSinkOperator
from zuora_etl.operators.mark import ZuoraMarkTransferredOperator
from zuora_etl.operators.transform import ZuoraTransformOperator
from zuora_etl.pipeline import read_ids

from tests.unit.operators.conftest import context, everything

POSTED = ["status.EQ:Posted"]


def loaded(mode: str = "sync") -> dict:
    ctx = context("mark-run")
    common = {"family": "erp_invoices", "zuora_object": "invoices"}
    extracted = ZuoraObjectQueryOperator(task_id="e", windows=everything(), filters=POSTED,
                                         extra_fields=["transferredToAccounting"], **common).execute(ctx)  # fmt: skip
    transformed = ZuoraTransformOperator(task_id="t", zuora_object="invoices", manifest=extracted).execute(ctx)
    return ZuoraSinkOperator(task_id="l", manifest=transformed, sink_conn_id="zuora_erp_sink", plan={"mode": mode},
                             **common).execute(ctx)  # fmt: skip


def test_flags_the_loaded_documents_and_stages_their_ids(env):
    result = ZuoraMarkTransferredOperator(task_id="m", family="erp_invoices", zuora_object="invoices",
                                          manifest=loaded()).execute(context("mark-run"))  # fmt: skip
    posted = [r for r in env.emu.store.truth("invoices") if r["status"] == "Posted"]
    assert result["marked"] == len(posted) and result["mark_failed"] == 0
    assert sorted(read_ids(result["parts"])) == sorted(r["id"] for r in posted)
    assert all(
        r["transferredToAccounting"] == "Yes" for r in env.emu.store.truth("invoices") if r["status"] == "Posted"
    )


def test_a_dry_run_flags_nothing(env):
    op = ZuoraMarkTransferredOperator(task_id="m", family="erp_invoices", zuora_object="invoices",
                                      manifest=loaded("dry_run"), plan={"mode": "dry_run"})  # fmt: skip
    with pytest.raises(AirflowSkipException):
        op.execute(context("mark-run"))
    assert not any(r["transferredToAccounting"] == "Yes" for r in env.emu.store.truth("invoices"))
