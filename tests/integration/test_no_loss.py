"""No record lost quietly: to a mapping, to a bad answer from Zuora, or to a crash. Each test runs
the real DAGs (dag.test) against the emulator over HTTP into SQLite."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from zuora_etl.mapping import _cached_mapping
from zuora_etl.state import StateStore
from zuora_etl.windows import parse_instant

from tests.airflow_env import ROOT
from tests.sync_harness import assert_family_matches


@pytest.fixture
def include(tmp_path, monkeypatch):
    """A private copy of include/families and include/mappings the DAGs read, for editing mappings."""
    root = tmp_path / "include"
    for part in ("families", "mappings"):
        shutil.copytree(ROOT / "include" / part, root / part)
    monkeypatch.setenv("ZUORA_ETL_INCLUDE_DIR", str(root))
    _cached_mapping.cache_clear()
    yield root
    _cached_mapping.cache_clear()


def edit_mapping(include, name: str, old: str, new: str) -> None:
    path = include / "mappings" / f"{name}.yaml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    _cached_mapping.cache_clear()


def count(env, conn_id: str, table: str, where: str = "") -> int:
    with env.engine(conn_id).connect() as conn:
        if not sa.inspect(conn).has_table(table):
            return 0
        return conn.execute(sa.text(f"SELECT count(*) FROM {table} {where}")).scalar_one()


def orphan_items(env) -> int:
    return count(env, "zuora_erp_sink", "invoice_items", "WHERE invoice_id NOT IN (SELECT id FROM invoices)")


def state(env) -> StateStore:
    return StateStore(engine=env.engine("zuora_etl_state"))


POSTED_ONLY_DRAFT = "status: {source: status, type: string, allowed: [Draft]}"


def test_a_mapping_rejecting_every_posted_invoice_fails_before_loading_then_the_fix_loads_them_all(env, include):
    edit_mapping(include, "invoices", "status: {source: status, type: string}", POSTED_ONLY_DRAFT)
    assert env.run("zuora_erp_invoices") == "failed"
    assert count(env, "zuora_erp_sink", "invoices") == 0
    assert count(env, "zuora_erp_sink", "invoice_items") == 0, "no item may reach the ERP without its invoice"
    assert env.watermark("erp_invoices", "invoices") is None, "nothing advanced"
    runs = {r["object"]: r for r in state(env).runs("erp_invoices")}
    assert runs["invoices"]["status"] == "failed" and runs["invoices"]["rows_loaded"] == 0

    edit_mapping(include, "invoices", POSTED_ONLY_DRAFT, "status: {source: status, type: string}")
    assert env.run("zuora_erp_invoices") == "success"
    counts = assert_family_matches(env, "erp_invoices")
    assert counts["invoices"] > 20 and counts["invoice_items"] > 0 and orphan_items(env) == 0


def test_a_few_rejected_invoices_hold_their_items_back_and_land_with_them_once_fixed(env, include):
    *posted, newest = [r["id"] for r in env.emu.store.truth("invoices") if r["status"] == "Posted"][:4]
    # The bad ones an hour ago, another invoice just now: the next run's window (watermark minus a
    # five-minute overlap) no longer reaches the bad ones, so only their dead letters bring them back.
    env.emu.store.mutate([{"op": "update", "object": "invoices", "ids": posted, "set": {"currency": "XXX"}}],
                         at=time.time() - 3600)  # fmt: skip
    env.emu.store.mutate([{"op": "update", "object": "invoices", "ids": [newest], "set": {}}], at=time.time() - 2)
    edit_mapping(include, "invoices", "currency: {source: currency, type: string}",
                 "currency: {source: currency, type: string, allowed: [USD, EUR, GBP]}")  # fmt: skip
    assert env.run("zuora_erp_invoices") == "failed", "a run that left records behind is not green"
    runs = {r["object"]: r for r in state(env).runs("erp_invoices")}
    assert runs["invoices"]["status"] == "partial" and runs["invoices"]["rows_quarantined"] == 3
    assert runs["invoice_items"]["status"] == "partial"
    letters = state(env).open_dead_letters("erp_invoices")
    assert {d["record_id"] for d in letters if d["object"] == "invoices"} == set(posted)
    held = [d for d in letters if d["object"] == "invoice_items"]
    assert held and all(d["stage"] == "held" and "did not land" in d["reason"] for d in held)
    assert orphan_items(env) == 0
    assert count(env, "zuora_erp_sink", "invoices", f"WHERE id IN ({','.join(repr(i) for i in posted)})") == 0
    assert env.watermark("erp_invoices", "invoices"), "records left in dead letters do not stop the watermark"

    # The mapping is fixed; Zuora did not change them, so only the dead letters bring them back.
    edit_mapping(include, "invoices", "allowed: [USD, EUR, GBP]", "max_length: 3")
    assert env.run("zuora_erp_invoices") == "success"
    assert_family_matches(env, "erp_invoices")
    assert orphan_items(env) == 0 and not state(env).open_dead_letters("erp_invoices")
    flagged = {r["id"]: r.get("transferredToAccounting") for r in env.emu.store.truth("invoices")}
    assert all(flagged[i] == "Yes" for i in posted), "the retried invoices are flagged like any other"


@pytest.mark.parametrize(
    "rule",
    [
        {"kind": "repeat_cursor", "every": 2, "max": 3},
        {"kind": "missing_id", "every": 2, "max": 3},
        {"kind": "not_json", "every": 1},  # a gateway page is retried by the hook, then fails the task
    ],
)
def test_an_anomalous_answer_fails_the_run_and_the_rerun_converges(env, rule):
    env.emu.set_faults({"rules": [{**rule, "match": "/object-query/contacts"}]})
    assert env.run("zuora_crm_accounts", {"slices": 1}) == "failed"  # one cursor: the fault hits its pages
    assert env.watermark("crm_accounts", "contacts") is None and env.watermark("crm_accounts", "accounts") is None
    env.emu.set_faults(None)
    assert env.run("zuora_crm_accounts") == "success"
    assert_family_matches(env, "crm_accounts")


def test_a_future_updated_date_does_not_stall_later_runs(env):
    future, later = env.emu.store.truth("invoices")[:2]
    env.emu.store.mutate([{"op": "update", "object": "invoices", "ids": [future["id"]],
                           "set": {"updatedDate": "2099-01-01T00:00:00Z"}}])  # fmt: skip
    started = datetime.now(UTC)
    assert env.run("zuora_crm_invoices") == "success"
    assert parse_instant(env.watermark("crm_invoices", "invoices")) <= datetime.now(UTC)
    time.sleep(1.1)
    env.emu.store.mutate([{"op": "update", "object": "invoices", "ids": [later["id"]], "set": {"balance": 12.34}}])
    time.sleep(1.1)  # a window ends at a whole second (LT): let the change's second end before the run
    assert env.run("zuora_crm_invoices") == "success"
    with env.engine("zuora_crm_sink").connect() as conn:
        balance = conn.execute(sa.text("SELECT balance FROM invoices WHERE id = :i"), {"i": later["id"]}).scalar()
    assert float(balance) == 12.34, "the change after the future-stamped record was read"
    assert parse_instant(env.watermark("crm_invoices", "invoices")) >= started


def test_a_memo_put_refused_with_http_200_is_not_counted_as_flagged(env):
    env.emu.set_faults({"rules": [{"kind": "memo_refuse", "match": "/v1/credit-memos", "every": 1, "max": 2}]})
    assert env.run("zuora_erp_memos") == "failed"
    refused = [d for d in state(env).open_dead_letters("erp_memos", "credit_memos") if d["stage"] == "mark"]
    assert len(refused) == 2
    flags = {r["id"]: r.get("transferredToAccounting") for r in env.emu.store.truth("credit-memos")}
    assert all(flags[d["record_id"]] != "Yes" for d in refused)
    runs = {r["object"]: r for r in state(env).runs("erp_memos")}
    assert runs["credit_memos"]["status"] == "failed"


def test_a_wrong_secret_fails_the_run_within_a_minute(env, monkeypatch, capsys):
    import json
    import os

    conn = json.loads(os.environ["AIRFLOW_CONN_ZUORA_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_DEFAULT", json.dumps({**conn, "password": "wrong-secret-value"}))
    started = time.monotonic()
    dag = __import__("tests.sync_harness", fromlist=["dagbag"]).dagbag().dags["zuora_crm_accounts"]
    run = dag.test(run_conf={"start": None, "end": None, "dry_run": False})  # the DAG's own retries stay on
    assert str(getattr(run.state, "value", run.state)) == "failed"
    assert time.monotonic() - started < 60
    out = capsys.readouterr()
    assert "check the client id and secret" in out.out + out.err
    assert "wrong-secret-value" not in out.out + out.err


def test_two_families_cannot_mix_their_records_in_one_table(env, monkeypatch):
    crm = env.data_dir / "crm.db"
    env.use_sink(monkeypatch, "zuora_erp_sink", f'{{"conn_type": "sqlite", "host": "{crm}"}}')
    assert env.run("zuora_crm_invoices") == "success"
    drafts = count(env, "zuora_crm_sink", "invoices", "WHERE status = 'Draft'")
    before = count(env, "zuora_crm_sink", "invoices")
    assert env.run("zuora_erp_invoices") == "failed"
    assert count(env, "zuora_crm_sink", "invoices") == before and drafts > 0
    assert not [m for m in env.emu.store.truth("invoices") if m.get("transferredToAccounting") == "Yes"]
