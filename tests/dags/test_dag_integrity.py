"""Every DAG imports, and carries what operators of this project rely on."""

from __future__ import annotations

import os
import shutil

import pytest

from tests.airflow_env import ROOT


@pytest.fixture(scope="module")
def bag():
    """A DagBag of its own: what the scheduler would parse, untouched by other tests' runs."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


SYNC_DAGS = ["zuora_crm_accounts", "zuora_crm_subscriptions", "zuora_crm_orders", "zuora_crm_invoices",
             "zuora_erp_invoices", "zuora_erp_payments", "zuora_erp_memos"]  # fmt: skip


def test_dags_import_without_errors(bag):
    assert bag.import_errors == {}
    assert set(SYNC_DAGS) <= set(bag.dag_ids)


@pytest.mark.parametrize("dag_id", SYNC_DAGS)
def test_sync_dag_shape(bag, dag_id):
    dag = bag.dags[dag_id]
    assert dag.tags and "zuora" in dag.tags
    assert dag.doc_md and "zuora_hwm__" in dag.doc_md
    # one sync at a time (a lease), with room beside it for a date-range backfill and a dry run
    assert dag.max_active_runs == 3 and dag.catchup is False
    assert {"start", "end", "dry_run"} <= set(dag.params.keys())
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable", "backfills need real data intervals"
    for task in dag.tasks:
        assert task.retries >= 1, task.task_id
        assert task.owner and task.owner != "airflow", task.task_id
    extracts = [t for t in dag.tasks if t.task_id.endswith(".extract")]
    assert extracts and all(t.pool == "zuora_api" for t in extracts)
    # one step ends the run (watermarks, report, staging, lease): no task start spent on each
    assert {"plan", "finish"} <= set(dag.task_ids)
    assert not {"advance", "summarize", "clean_staging"} & set(dag.task_ids)
    finish = dag.get_task("finish")
    assert finish.trigger_rule == "all_done" and not finish.downstream_task_ids
    # finish receives every step's result as an input: it cannot start before any of them ends
    steps = {t.task_id for t in dag.tasks if t.task_id.rsplit(".", 1)[-1] in ("extract", "load", "mark")}
    assert steps <= finish.get_flat_relative_ids(upstream=True)
    plan = dag.get_task("plan")  # a backfill run another run covers skips everything after it, at once
    assert type(plan).__name__ == "_ShortCircuitDecoratedOperator" and plan.ignore_downstream_trigger_rules
    # each extract maps what it read (mapped extracts side by side); the load takes it from there
    assert not [t for t in dag.tasks if t.task_id.endswith(".transform")]
    for extract in extracts:
        load = extract.task_id.replace(".extract", ".load")
        assert extract.task_id in dag.get_task(load).upstream_task_ids


@pytest.mark.parametrize("dag_id", ["zuora_erp_invoices", "zuora_erp_payments", "zuora_erp_memos"])
def test_erp_dags_mark_before_advancing(bag, dag_id):
    dag = bag.dags[dag_id]
    marks = [t for t in dag.tasks if t.task_id.endswith(".mark")]
    assert marks
    before_advance = dag.get_task("finish").get_flat_relative_ids(upstream=True)
    assert {m.task_id for m in marks} <= before_advance
    readbacks = {t.task_id for t in dag.tasks if ".readback." in t.task_id}
    assert {
        f"{m.task_id[: -len('.mark')]}.readback.{step}" for m in marks for step in ("extract", "load")
    } <= readbacks & before_advance, "the read-back of flagged documents is a visible step before the watermarks move"


def test_crm_dags_do_not_mark(bag):
    for dag_id in SYNC_DAGS[:4]:
        assert not [t for t in bag.dags[dag_id].tasks if t.task_id.endswith(".mark")]


def test_every_family_has_its_own_dag_file():
    from zuora_etl.families import load_families

    dags = {p.stem for p in (ROOT / "dags").glob("zuora_*.py")}
    assert {f.dag_id for f in load_families()} <= dags


def test_a_broken_mapping_or_family_takes_down_only_its_own_dags(tmp_path, monkeypatch):
    from airflow.dag_processing.dagbag import DagBag

    include = tmp_path / "include"
    shutil.copytree(ROOT / "include" / "families", include / "families")
    shutil.copytree(ROOT / "include" / "mappings", include / "mappings")
    invoices = include / "mappings" / "invoices.yaml"
    invoices.write_text(invoices.read_text().replace("{source: postedDate, type: datetime}",
                                                     "{source: postedDate, type: date}"))  # fmt: skip
    payments = include / "families" / "erp_payments.yaml"
    payments.write_text(payments.read_text().replace("name: refunds", "name: refundz"))
    monkeypatch.setenv("ZUORA_ETL_INCLUDE_DIR", str(include))
    bag = DagBag(dag_folder=str(ROOT / "dags"))
    errors = {os.path.basename(path): text for path, text in bag.import_errors.items()}
    assert set(errors) == {"zuora_crm_invoices.py", "zuora_erp_invoices.py", "zuora_erp_payments.py"}
    assert "invoices.yaml: column posted_date: postedDate is a datetime" in errors["zuora_erp_invoices.py"]
    assert "fix: type: datetime" in errors["zuora_erp_invoices.py"]
    assert "unknown Zuora object 'refundz'" in errors["zuora_erp_payments.py"]
    assert {"zuora_crm_accounts", "zuora_crm_orders", "zuora_crm_subscriptions", "zuora_erp_memos"} <= set(bag.dag_ids)
    replay = bag.dags["zuora_replay"]  # spans every family: keeps serving the good ones
    assert set(replay.params.get_param("family").schema["enum"]) == {"crm_accounts", "crm_orders",
                                                                    "crm_subscriptions", "erp_memos"}  # fmt: skip
    assert "Not replayable until fixed" in replay.doc_md and "erp_payments.yaml" in replay.doc_md


def test_replay_dag_shape(bag):
    dag = bag.dags["zuora_replay"]
    assert {"family", "object", "ids", "dead_letters", "dry_run"} <= set(dag.params.keys())
    assert dag.schedule is None or dag.timetable.summary in ("None", "")
    assert {"resolve", "needs_approval", "approve", "approval_not_needed", "route", "summarize"} <= set(dag.task_ids)
    assert "finish" not in dag.task_ids, "a replay never moves a watermark"
    assert dag.get_task("clean_staging").is_teardown
    assert {f"{fam}.invoices.extract" for fam in ("crm_invoices", "erp_invoices")} <= set(dag.task_ids)
    assert dag.get_task("erp_invoices.invoice_items.load").upstream_task_ids >= {"erp_invoices.invoices.load"}
    assert "erp_invoices.invoices.readback.load" in dag.task_ids


@pytest.mark.parametrize(
    ("dag_id", "parent", "child"),
    [("zuora_erp_invoices", "invoices", "invoice_items"), ("zuora_erp_memos", "debit_memos", "debit_memo_items")],
)
def test_items_load_only_after_their_documents(bag, dag_id, parent, child):
    dag = bag.dags[dag_id]
    assert f"{parent}.load" in dag.get_task(f"{child}.load").upstream_task_ids


@pytest.mark.parametrize(
    ("dag_id", "parent", "child"),
    [("zuora_erp_invoices", "invoices", "invoice_items"), ("zuora_erp_memos", "credit_memos", "credit_memo_items")],
)
def test_documents_load_after_their_lines_are_read_and_mapped(bag, dag_id, parent, child):
    """A REST target gets each document with its lines nested: the document's load waits for them."""
    assert f"{child}.extract" in bag.dags[dag_id].get_task(f"{parent}.load").upstream_task_ids


def test_reconciliation_dag_shape(bag):
    dag = bag.dags["zuora_reconciliation"]
    assert {"families", "period_start", "period_end", "repair"} <= set(dag.params.keys())
    assert dag.timetable.summary in ("@monthly", "0 0 1 * *") and not dag.catchup and dag.max_active_runs == 1
    assert {"plan", "report"} <= set(dag.task_ids)
    assert dag.get_task("report").trigger_rule == "all_done"
    assert all(t.retries >= 1 for t in dag.tasks)


def test_sizing_dag_shape(bag):
    dag = bag.dags["zuora_sizing"]
    assert not dag.catchup and dag.max_active_runs == 1
    assert {"count_by_month", "count_busiest_month_by_day", "measure_export_size", "write_report"} <= set(dag.task_ids)
    assert dag.doc_md and "Data Query" in dag.doc_md
