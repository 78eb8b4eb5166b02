"""ZuoraObjectQueryOperator on its own, against the emulator over HTTP: windows, slices, ids, parents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from zuora_etl.operators.extract import ZuoraObjectQueryOperator
from zuora_etl.pipeline import read_ids
from zuora_etl.windows import Window

from tests.sync_harness import SyncEnv
from tests.unit.operators.conftest import context, everything


def run(env: SyncEnv, map_index: int = -1, **kwargs) -> dict:
    op = ZuoraObjectQueryOperator(task_id="extract", family="crm_invoices", zuora_object="invoices", **kwargs)
    return op.execute(context(map_index=map_index))


def cluster_on_a_border(env: SyncEnv) -> tuple[datetime, list[str]]:
    """150 invoices updated in one second S: more than a page, all in one second."""
    second = int(datetime.now(UTC).timestamp()) - 3600
    ids = [r["id"] for r in env.emu.store.truth("invoices")[:150]]
    env.emu.store.mutate([{"op": "update", "object": "invoices", "ids": ids, "set": {}}], at=second)
    return datetime.fromtimestamp(second, UTC), ids


def test_sliced_extraction_equals_unsliced_across_a_same_second_cluster_on_a_border(env):
    second, cluster = cluster_on_a_border(env)
    window = Window(second - timedelta(minutes=10), second + timedelta(minutes=10))
    slices = window.split(2)
    assert slices[0].hi == second == slices[1].lo, "the cluster's second is the slice border"
    whole = run(env, windows=[window.to_dict()])
    parts = [run(env, map_index=i, window=s.to_dict()) for i, s in enumerate(slices)]
    sliced = [i for p in parts for i in read_ids(p["parts"])]
    assert sorted(sliced) == sorted(read_ids(whole["parts"]))
    assert len(sliced) == len(set(sliced)), "no record read twice"
    assert set(cluster) <= set(read_ids(parts[1]["parts"])) and not set(cluster) & set(read_ids(parts[0]["parts"]))
    names = [p.rsplit("/", 1)[-1] for m in parts for p in m["parts"]]
    assert len(names) == len(set(names)), "part names never collide between mapped tasks"
    assert [m["windows"] for m in parts] == [[s.to_dict()] for s in slices]


def test_only_the_first_slice_retries_dead_letters(env):
    from zuora_etl.state import StateStore

    inv = env.emu.store.truth("invoices")[0]
    StateStore().dead_letter("r0", "crm_invoices", "invoices", "load", [(inv["id"], "refused", None)])
    empty = {"lo": "2001-01-01T00:00:00+00:00", "hi": "2001-01-02T00:00:00+00:00"}
    first = run(env, map_index=0, window=empty, retry_dead_letters=True)
    second = run(env, map_index=1, window=empty, retry_dead_letters=True)
    assert (first["retried"], first["rows"]) == (1, 1) and (second["retried"], second["rows"]) == (0, 0)


def test_reads_the_ids_a_plan_lists_and_names_those_gone(env):
    from airflow.sdk import ObjectStoragePath
    from zuora_etl.pipeline import stage_ids

    ids = [r["id"] for r in env.emu.store.truth("invoices")[:3]] + ["f" * 32]
    staging = f"file://{env.data_dir}/staging/crm_invoices/replay"
    parts = stage_ids(ObjectStoragePath(staging) / "invoices", "replay-ids", ids)
    plan = {"staging_dir": staging, "objects": {"invoices": {"windows": [], "id_parts": parts}}}
    result = run(env, plan=plan)
    assert sorted(read_ids(result["parts"])) == sorted(ids[:3])
    assert result["gone_ids"] == ["f" * 32] and result["staging_dir"] == staging


def test_reads_the_children_of_a_parents_records(env):
    parent = run(env, windows=everything())
    op = ZuoraObjectQueryOperator(task_id="x", family="crm_invoices", zuora_object="invoice_items",
                                  parent=[parent], parent_key="invoiceId")  # fmt: skip
    items = op.execute(context())
    assert items["rows"] == len(env.emu.store.truth("invoice-items"))
    assert items["staging_dir"] == parent["staging_dir"]


def test_children_of_a_transformed_parent_are_read_by_its_raw_records_in_scope(env):
    parent = run(env, windows=everything(), transform=True, extra_fields=["status"], carry=["status"])
    assert parent["raw_parts"] and parent["parts"] != parent["raw_parts"]
    op = ZuoraObjectQueryOperator(task_id="x", family="erp_invoices", zuora_object="invoice_items", parent=parent,
                                  parent_key="invoiceId", parent_conditions=["status.EQ:Posted"])  # fmt: skip
    items = op.execute(context())
    posted = {r["id"] for r in env.emu.store.truth("invoices") if r["status"] == "Posted"}
    expected = [r for r in env.emu.store.truth("invoice-items") if r["invoiceId"] in posted]
    assert 0 < items["rows"] == len(expected) < len(env.emu.store.truth("invoice-items"))


def test_mapped_extracts_transform_their_own_slices_and_merge_as_one(env):
    from zuora_etl.manifests import one_manifest

    whole = Window.from_dict(everything()[0] | {"lo": "2000-01-01T00:00:00+00:00"})
    slices = [run(env, map_index=i, window=s.to_dict(), transform=True) for i, s in enumerate(whole.split(3))]
    merged = one_manifest(slices)
    truth = env.emu.store.truth("invoices")
    assert merged["rows"] == merged["rows_in"] == merged["rows_out"] == len(truth) and merged["quarantined"] == 0
    assert sorted(read_ids(merged["parts"])) == sorted(r["id"] for r in truth)
    assert sorted(read_ids(merged["raw_parts"])) == sorted(r["id"] for r in truth)
    names = [p.rsplit("/", 1)[-1] for m in slices for p in m["parts"]]
    assert len(names) == len(set(names)), "mapped part names never collide between mapped tasks"


def test_bad_records_are_quarantined_with_their_reason(env, strict_status):
    from zuora_etl.manifests import one_manifest

    bad = env.emu.store.truth("invoices")[:3]
    env.emu.store.mutate([{"op": "update", "object": "invoices", "ids": [r["id"] for r in bad],
                           "set": {"status": "Bogus"}}])  # fmt: skip
    whole = Window.from_dict(everything()[0] | {"lo": "2000-01-01T00:00:00+00:00"})
    result = one_manifest([run(env, map_index=i, window=s.to_dict(), transform=True)
                           for i, s in enumerate(whole.split(2))])  # fmt: skip
    assert result["quarantined"] == 3 and result["column_failures"]["status"]["records"] == 3
    assert result["rows_out"] == result["rows_in"] - 3 and len(result["quarantine_parts"]) >= 1
    assert "value not allowed" in result["column_failures"]["status"]["sample"]


def test_the_volume_probe_finds_the_first_record_and_counts_a_window_of_less_than_a_page(env):
    from zuora_etl.catalog import get_object
    from zuora_etl.hooks.zuora import ZuoraHook
    from zuora_etl.pipeline import probe_volume
    from zuora_etl.windows import parse_instant

    invoices = get_object("invoices")
    window = Window(None, datetime.now(UTC) + timedelta(hours=1))
    hook = ZuoraHook()
    first, rate = probe_volume(hook, invoices, [], window)
    assert first == min(parse_instant(r["updatedDate"]) for r in env.emu.store.truth("invoices"))
    assert rate is None and hook.api_calls == 1  # more than a page: the count stays unknown
    early = Window(first, first + timedelta(days=10))  # the tenant's first days: less than a page
    expected = [r for r in env.emu.store.truth("invoices") if early.lo <= parse_instant(r["updatedDate"]) < early.hi]
    assert 0 < len(expected) < 99
    found, rate = probe_volume(ZuoraHook(), invoices, [], early)
    assert found == first and rate * (early.hi - first).total_seconds() == pytest.approx(len(expected))
    late = Window(datetime.now(UTC) + timedelta(minutes=30), datetime.now(UTC) + timedelta(hours=1))
    assert probe_volume(ZuoraHook(), invoices, [], late) == (None, 0.0)
