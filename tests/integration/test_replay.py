"""zuora_replay for real (dag.test, emulator over HTTP, SQLite targets): exactly the records asked
for, silent changes included, no watermark moved, dead letters resolved."""

from __future__ import annotations

import sqlalchemy as sa
from zuora_etl.state import StateStore

from include.zuora_emulator.schema import OBJECTS as EMULATED
from tests.sync_harness import SyncEnv, assert_family_matches

REPLAY_DEFAULTS = {"ids": [], "dead_letters": False, "dry_run": False}


def replay(env: SyncEnv, **conf) -> str:
    return env.run("zuora_replay", {**REPLAY_DEFAULTS, **conf}, defaults=False)


def posted_invoices(env: SyncEnv) -> list[dict]:
    store = env.emu.store
    return store.truth("invoices", [store.parse_filter(EMULATED["invoices"], "status.EQ:Posted")])


def silently_change(env: SyncEnv, endpoint: str, record: dict, **values) -> None:
    """Change a record in Zuora without a new updatedDate (as Zuora does to balances)."""
    env.emu.store.mutate([{"op": "update", "object": endpoint, "ids": [record["id"]],
                           "set": {**values, "updatedDate": record["updatedDate"]}}])  # fmt: skip


def target(env: SyncEnv, table: str, column: str, ids: list[str]) -> dict[str, object]:
    with env.engine("zuora_erp_sink").connect() as conn:
        t = sa.table(table, sa.column("id"), sa.column(column))
        return dict(conn.execute(sa.select(t.c.id, t.c[column]).where(t.c.id.in_(ids))).tuples().all())


def test_replay_of_ids_and_numbers_loads_exactly_those_records_silent_changes_included(env):
    assert env.run("zuora_erp_invoices") == "success"
    watermark = env.watermark("erp_invoices", "invoices")
    a, b, c = posted_invoices(env)[:3]
    for inv in (a, b, c):
        silently_change(env, "invoices", inv, balance=12345.67)
    with env.engine("zuora_erp_sink").begin() as conn:  # b's items lost from the target
        conn.execute(sa.text("DELETE FROM invoice_items WHERE invoice_id = :i"), {"i": b["id"]})
    items_of_b = [i["id"] for i in env.emu.store.truth("invoice-items") if i["invoiceId"] == b["id"]]
    assert items_of_b

    assert replay(env, family="erp_invoices", object="invoices", ids=[a["invoiceNumber"], b["id"]]) == "success"

    balances = target(env, "invoices", "balance", [a["id"], b["id"], c["id"]])
    assert float(balances[a["id"]]) == float(balances[b["id"]]) == 12345.67  # forced: same updatedDate
    assert float(balances[c["id"]]) != 12345.67  # not asked for: untouched
    assert set(target(env, "invoice_items", "invoice_id", items_of_b)) == set(items_of_b)  # parts come along
    assert env.watermark("erp_invoices", "invoices") == watermark
    runs = {r["object"]: r for r in StateStore().runs("erp_invoices") if r["dag_id"] == "zuora_replay"}
    assert runs["invoices"]["mode"] == "replay" and runs["invoices"]["rows_extracted"] == 2
    assert runs["invoice_items"]["rows_extracted"] == len(items_of_b) + sum(
        1 for i in env.emu.store.truth("invoice-items") if i["invoiceId"] == a["id"]
    )


def test_replay_of_an_item_replays_its_document_with_all_its_items(env):
    assert env.run("zuora_erp_invoices") == "success"
    inv = posted_invoices(env)[0]
    items = [i for i in env.emu.store.truth("invoice-items") if i["invoiceId"] == inv["id"]]
    for item in items:
        silently_change(env, "invoice-items", item, accountingCode="4999-Silent")
    assert replay(env, family="erp_invoices", object="invoice_items", ids=[items[0]["id"]]) == "success"
    codes = target(env, "invoice_items", "accounting_code", [i["id"] for i in items])
    assert set(codes.values()) == {"4999-Silent"}


def test_replay_of_open_dead_letters_resolves_them(env):
    # A record the target refused earlier waits in dead letters; once fixed in Zuora without a new
    # updatedDate, no sync window reads it, but the replay of dead letters does.
    assert env.run("zuora_erp_invoices") == "success"
    inv = posted_invoices(env)[0]
    state = StateStore()
    state.dead_letter("earlier-run", "erp_invoices", "invoices", "load", [(inv["id"], "refused earlier", None)])
    silently_change(env, "invoices", inv, balance=777.0)
    assert replay(env, family="erp_invoices", object="invoices", dead_letters=True) == "success"
    assert float(target(env, "invoices", "balance", [inv["id"]])[inv["id"]]) == 777.0
    assert state.open_dead_letter_ids("erp_invoices", "invoices") == []
    letter = [d for d in state.open_dead_letters() if d["record_id"] == inv["id"]]
    assert letter == []


def test_replay_flags_erp_documents_as_the_sync_would(env):
    inv = posted_invoices(env)[0]
    assert replay(env, family="erp_invoices", object="invoices", ids=[inv["invoiceNumber"]]) == "success"
    assert (
        env.emu.store.truth("invoices", [env.emu.store.parse_filter(EMULATED["invoices"], f"id.EQ:{inv['id']}")])[0][
            "transferredToAccounting"
        ]
        == "Yes"
    )
    assert target(env, "invoices", "transferred_to_accounting", [inv["id"]]) == {inv["id"]: "Yes"}


def test_replay_dry_run_writes_nothing_and_reports_the_change(env):
    assert env.run("zuora_erp_invoices") == "success"
    inv = posted_invoices(env)[1]
    silently_change(env, "invoices", inv, balance=5.5)
    assert replay(env, family="erp_invoices", object="invoices", ids=[inv["id"]], dry_run=True) == "success"
    assert float(target(env, "invoices", "balance", [inv["id"]])[inv["id"]]) != 5.5
    runs = {r["object"]: r for r in StateStore().runs("erp_invoices") if r["dag_id"] == "zuora_replay"}
    assert runs["invoices"]["status"] == "dry_run" and runs["invoices"]["rows_loaded"] == 1


def test_a_replay_of_unknown_numbers_fails_at_once_saying_so(env):
    assert replay(env, family="erp_invoices", object="invoices", ids=["INV-DOES-NOT-EXIST"]) == "failed"


def test_after_a_replay_the_family_still_equals_zuora(env):
    assert env.run("zuora_erp_invoices") == "success"
    ids = [i["id"] for i in posted_invoices(env)[:5]]
    assert replay(env, family="erp_invoices", object="invoices", ids=ids) == "success"
    assert env.run("zuora_erp_invoices") == "success"
    assert_family_matches(env, "erp_invoices")
