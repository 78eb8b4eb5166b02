"""ERP families delivering over REST for real: dag.test() runs against the Zuora emulator and the
reference ERP API (include/reference_erp), both over HTTP on loopback, with the state in SQLite.

Every document the family's scope selects arrives once (invoices and memos with their lines), and
exactly the accepted ones are flagged in Zuora; 429s, 500s, lost answers and refusals end with the
refused documents in dead letters, unflagged, until a rerun delivers them; changes after delivery
reach the ERP as updates and cancels."""

from __future__ import annotations

import json
from datetime import date

import pytest
from zuora_etl.catalog import get_object
from zuora_etl.families import get_family
from zuora_etl.state import StateStore, call_budget

from include.reference_erp import ReferenceErp
from include.zuora_emulator.schema import OBJECTS as EMULATED
from scripts.verify import compare_api
from tests.sync_harness import SyncEnv

# Generous limits for a test: the ERP is local and the point is correctness, not pacing.
ERP_EXTRA = {"rate_per_second": 1000, "backoff_seconds": 0.02, "max_attempts": 8}
COLLECTIONS = {"invoices": "invoices", "payments": "payments", "refunds": "refunds",
               "credit_memos": "credit_memos", "debit_memos": "debit_memos"}  # fmt: skip
LINES = {"invoices": ("invoice_items", "invoiceId"), "credit_memos": ("credit_memo_items", "creditMemoId"),
         "debit_memos": ("debit_memo_items", "debitMemoId")}  # fmt: skip


@pytest.fixture
def erp(env, monkeypatch):
    with ReferenceErp() as server:
        conn = {"conn_type": "http", "host": server.url, "login": "erp", "password": "erp-secret", "extra": ERP_EXTRA}
        env.use_sink(monkeypatch, "zuora_erp_sink", json.dumps(conn))
        yield server


def in_scope(env: SyncEnv, family: str, obj: str) -> list[dict]:
    store, endpoint = env.emu.store, get_object(obj).endpoint
    selection = get_family(family).get(obj).selection
    return store.truth(endpoint, [store.parse_filter(EMULATED[endpoint], f) for f in selection])


def flagged(env: SyncEnv, obj: str) -> set[str]:
    return {r["id"] for r in env.emu.store.truth(get_object(obj).endpoint) if r.get("transferredToAccounting") == "Yes"}


def document_lines(doc: dict) -> list[str]:
    body = next(iter(doc["document"].values()))
    return sorted(line["external_id"] for line in body.get("items", []))


def assert_erp_holds_zuora(env: SyncEnv, erp: ReferenceErp, family: str) -> dict[str, int]:
    """Each delivered object: the ERP holds exactly the documents in the family's scope, each
    created once, with all its lines; Zuora flags exactly those."""
    counts = {}
    for o in get_family(family).objects:
        if o.name not in COLLECTIONS:
            continue
        expected = {r["id"]: r for r in in_scope(env, family, o.name)}
        docs = {d["external_id"]: d for d in erp.documents(COLLECTIONS[o.name]) if d["status"] == "active"}
        assert set(docs) == set(expected), f"{o.name}: {len(set(expected) - set(docs))} missing, " \
                                           f"{len(set(docs) - set(expected))} extra"  # fmt: skip
        assert flagged(env, o.name) == set(expected), o.name
        if o.name in LINES:
            lines, key = LINES[o.name]
            by_parent: dict[str, list[str]] = {}
            for line in env.emu.store.truth(get_object(lines).endpoint):
                by_parent.setdefault(line[key], []).append(line["id"])
            for doc_id, doc in docs.items():
                assert document_lines(doc) == sorted(by_parent.get(doc_id, [])), f"{o.name} {doc_id}"
        counts[o.name] = len(docs)
    for c in compare_api(env.emu, get_family(family), erp.documents):  # every field of every document
        assert c.equal, f"{c.object}: {len(c.missing)} missing, {len(c.extra)} extra, e.g. {c.differing[:1]}"
    return counts


@pytest.mark.parametrize("family", ["erp_invoices", "erp_payments", "erp_memos"])
def test_each_erp_family_delivers_every_document_once_and_flags_exactly_those(env, erp, family):
    assert env.run(f"zuora_{family}") == "success"
    counts = assert_erp_holds_zuora(env, erp, family)
    assert all(counts.values()), counts
    for collection in {COLLECTIONS[o] for o in counts}:
        assert all(d["version"] == 1 for d in erp.documents(collection))  # created once, never rewritten
    writes = erp.stats["requests"]

    assert env.run(f"zuora_{family}") == "success"  # the flagged documents come back: nothing to send
    assert erp.stats["requests"] == writes
    assert_erp_holds_zuora(env, erp, family)


def test_429s_500s_lost_answers_and_refusals_end_in_dead_letters_until_a_rerun_delivers(env, erp):
    posted = [r["id"] for r in in_scope(env, "erp_invoices", "invoices")]
    refused = {posted[3]: "customer account on hold", posted[40]: "unknown GL account", posted[-1]: "period closed"}
    erp.set_faults({"every": {"429": 97, "500": 89}, "lose_answer_every": 101, "reject": refused})

    assert env.run("zuora_erp_invoices") == "failed"  # documents left behind never show green

    docs = {d["external_id"]: d for d in erp.documents("invoices")}
    assert set(docs) == set(posted) - set(refused)
    assert all(d["version"] == 1 for d in docs.values())  # retried and lost answers created nothing twice
    assert erp.stats["by_status"].get("429") and erp.stats["by_status"].get("500") and erp.stats["lost_answers"]
    letters = {d["record_id"]: d for d in StateStore().open_dead_letters("erp_invoices", "invoices")}
    assert set(letters) == set(refused)
    held = StateStore().open_dead_letters("erp_invoices", "invoice_items")
    assert held and {d["stage"] for d in held} == {"held"}
    assert all(refused[i] in letters[i]["reason"] and "HTTP 422" in letters[i]["reason"] for i in refused)
    assert flagged(env, "invoices") == set(posted) - set(refused)  # refused documents stay unflagged

    erp.set_faults({})  # the ERP's team fixed the accounts: nothing else to do by hand
    assert env.run("zuora_erp_invoices") == "success"
    assert_erp_holds_zuora(env, erp, "erp_invoices")
    assert not StateStore().open_dead_letters("erp_invoices")  # the held items went with their invoices


def test_changes_after_delivery_reach_the_erp_as_updates_and_cancels(env, erp):
    assert env.run("zuora_erp_payments") == "success"
    assert env.run("zuora_erp_invoices") == "success"
    payment = in_scope(env, "erp_payments", "payments")[0]
    invoice = in_scope(env, "erp_invoices", "invoices")[0]
    env.emu.store.mutate([
        {"op": "update", "object": "payments", "ids": [payment["id"]], "set": {"status": "Error"}},  # returned ACH
        {"op": "update", "object": "invoices", "ids": [invoice["id"]], "set": {"balance": 1234.56}},  # partly paid
    ])  # fmt: skip

    assert env.run("zuora_erp_payments") == "success"
    assert env.run("zuora_erp_invoices") == "success"

    returned = erp.document("payments", payment["id"])
    assert returned["status"] == "canceled" and "Error" in json.dumps(erp.history("payments", payment["id"])[-1])
    paid = erp.document("invoices", invoice["id"])
    assert paid["version"] == 2 and paid["document"]["invoice"]["balance"] == 1234.56
    assert [h["op"] for h in erp.history("invoices", invoice["id"])] == ["create", "replace"]
    others = [d for d in erp.documents("payments") if d["external_id"] != payment["id"]]
    assert all(d["version"] == 1 for d in others)  # nothing else was sent again


def test_a_spent_daily_budget_refuses_the_rest_until_the_next_day(env, erp, monkeypatch):
    conn = {"conn_type": "http", "host": erp.url, "login": "erp", "password": "erp-secret",
            "extra": {**ERP_EXTRA, "daily_call_budget": 30}}  # fmt: skip
    env.use_sink(monkeypatch, "zuora_erp_sink", json.dumps(conn))

    assert env.run("zuora_erp_invoices") == "failed"

    assert erp.stats["requests"] == 30 and len(erp.documents("invoices")) == 30
    letters = StateStore().open_dead_letters("erp_invoices", "invoices")
    assert len(letters) == len(in_scope(env, "erp_invoices", "invoices")) - 30
    assert all("daily call budget of 30" in d["reason"] for d in letters)
    assert flagged(env, "invoices") == {d["external_id"] for d in erp.documents("invoices")}

    with StateStore().engine.begin() as db:  # the next UTC day
        db.execute(call_budget.update().values(day=date(2000, 1, 1)))
    bigger = {**conn, "extra": {**ERP_EXTRA, "daily_call_budget": 5000}}
    env.use_sink(monkeypatch, "zuora_erp_sink", json.dumps(bigger))
    assert env.run("zuora_erp_invoices") == "success"
    assert_erp_holds_zuora(env, erp, "erp_invoices")


def test_a_crm_family_delivers_to_a_crm_api(env, erp, monkeypatch):
    """The reference API stands in for a CRM: each object as its own document, 50 to a batch."""
    conn = {"conn_type": "http", "host": erp.url, "login": "erp", "password": "erp-secret", "extra": ERP_EXTRA}
    env.use_sink(monkeypatch, "zuora_crm_sink", json.dumps(conn))
    assert env.run("zuora_crm_accounts") == "success"
    for obj in ("accounts", "contacts"):
        zuora = {r["id"]: r for r in env.emu.store.truth(get_object(obj).endpoint)}
        docs = {d["external_id"]: d for d in erp.documents(obj)}
        assert set(docs) == set(zuora), obj
        sample = next(iter(docs.values()))["document"]
        assert next(iter(sample.values()))["fields"]["id"] == next(iter(sample.values()))["external_id"]
    assert erp.stats["by_route"].get("POST /api/v1/{collection}/batch")


def test_a_dry_run_sends_nothing_and_a_replay_sends_again(env, erp):
    posted = in_scope(env, "erp_invoices", "invoices")
    assert env.run("zuora_erp_invoices", {"dry_run": True}) == "success"
    assert erp.stats["requests"] == 0 and not flagged(env, "invoices")
    runs = {r["object"]: r for r in StateStore().runs("erp_invoices") if r["mode"] == "dry_run"}
    assert runs["invoices"]["rows_inserted"] == len(posted)

    assert env.run("zuora_erp_invoices") == "success"
    target = posted[5]
    replay = {"family": "erp_invoices", "object": "invoices", "ids": [target["invoiceNumber"]], "dead_letters": False,
              "dry_run": False}  # fmt: skip
    assert env.run("zuora_replay", replay, defaults=False) == "success"
    assert [h["op"] for h in erp.history("invoices", target["id"])] == ["create", "replace"]  # forced
    assert sum(d["version"] for d in erp.documents("invoices")) == len(posted) + 1  # nothing else sent


def test_a_sql_erp_target_follows_the_same_decisions(env):
    """Without the http sink: a delivered payment that leaves Processed takes its new status in the
    table (where a source filter would have left it Processed forever); a Draft never arrives."""
    assert env.run("zuora_erp_payments") == "success"
    payment = in_scope(env, "erp_payments", "payments")[0]
    env.emu.store.mutate([{"op": "update", "object": "payments", "ids": [payment["id"]], "set": {"status": "Error"}}])
    assert env.run("zuora_erp_payments") == "success"
    with env.engine("zuora_erp_sink").connect() as conn:
        statuses = dict(conn.exec_driver_sql("SELECT id, status FROM payments").all())
    assert statuses[payment["id"]] == "Error"
    assert set(statuses.values()) == {"Processed", "Error"}
    assert set(statuses) == {r["id"] for r in in_scope(env, "erp_payments", "payments")} | {payment["id"]}
