"""Reading a parent's children in threads against a tenant with a low Object Query concurrency
limit: the same records as one thread, fewer seconds, Zuora's limit never reached, no 429."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from airflow.sdk import ObjectStoragePath
from zuora_etl.catalog import get_object
from zuora_etl.hooks.zuora import ZuoraHook
from zuora_etl.mapping import cached_mapping
from zuora_etl.pipeline import extract_ids, extract_windows, extraction_fields
from zuora_etl.staging import read_frames
from zuora_etl.windows import Window, floor_second, parse_instant

from include.zuora_emulator import Emulator

ZUORA_LIMIT = 6  # Object Query requests Zuora allows at once: the gate keeps 2 in reserve


@pytest.fixture(scope="module")
def slow_tenant():
    with Emulator(scale="small", seed=42, latency_ms=40, concurrency_limit=ZUORA_LIMIT) as emu:
        yield emu


def read_items(emu: Emulator, monkeypatch, tmp_path, max_in_flight: int) -> tuple[dict, float]:
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_DEFAULT", json.dumps({
        "conn_type": "http", "host": emu.base_url, "login": "demo-client", "password": "demo-secret",
        "extra": {"max_in_flight": max_in_flight, "backoff_seconds": 0.01},
    }))  # fmt: skip
    invoices = [r["id"] for r in emu.store.truth("invoices")]
    obj = get_object("invoice_items")
    fields = extraction_fields(cached_mapping("invoice_items"), ["invoiceId"])
    emu.stats.reset()
    started = time.monotonic()
    manifest = extract_ids(ZuoraHook, obj, "invoiceId", invoices, fields, [],
                           ObjectStoragePath(f"file://{tmp_path}/t{max_in_flight}"), "raw-parent")  # fmt: skip
    return manifest, time.monotonic() - started


def ids(manifest: dict) -> list[str]:
    return sorted(i for frame in read_frames(manifest["parts"]) for i in frame["id"])


def test_threads_stay_under_zuoras_limit_and_read_the_same_records(slow_tenant, monkeypatch, tmp_path):
    one, one_s = read_items(slow_tenant, monkeypatch, tmp_path, max_in_flight=1)
    assert slow_tenant.stats_view()["max_requests_in_flight"] == 1
    many, many_s = read_items(slow_tenant, monkeypatch, tmp_path, max_in_flight=16)
    stats = slow_tenant.stats_view()
    truth = sorted(r["id"] for r in slow_tenant.store.truth("invoice-items"))
    assert ids(one) == ids(many) == truth and many["rows"] == len(truth) > 500
    assert stats["rate_limited"] == 0, stats["statuses"]
    # 16 threads asked for; Zuora allows 6 and the gate keeps 2 of them free
    assert 2 <= stats["max_requests_in_flight"] <= ZUORA_LIMIT - 2
    assert len(many["parts"]) > 1 and many["pages"] >= one["pages"]
    assert many_s < one_s / 2, (one_s, many_s)


def test_sub_slices_read_in_threads_stay_under_zuoras_limit(slow_tenant, monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_DEFAULT", json.dumps({
        "conn_type": "http", "host": slow_tenant.base_url, "login": "demo-client", "password": "demo-secret",
        "extra": {"max_in_flight": 16, "backoff_seconds": 0.01},
    }))  # fmt: skip
    obj = get_object("invoice_items")
    fields = extraction_fields(cached_mapping("invoice_items"), ["invoiceId"])
    whole = Window(None, floor_second(datetime.now(UTC)))
    first = min(parse_instant(r["updatedDate"]) for r in slow_tenant.store.truth("invoice-items"))
    slow_tenant.stats.reset()
    manifest = extract_windows(ZuoraHook, obj, fields, [], whole.split(12, first),
                               ObjectStoragePath(f"file://{tmp_path}/w"), "raw-s")  # fmt: skip
    stats = slow_tenant.stats_view()
    truth = sorted(r["id"] for r in slow_tenant.store.truth("invoice-items"))
    assert ids(manifest) == truth
    assert stats["rate_limited"] == 0 and 2 <= stats["max_requests_in_flight"] <= ZUORA_LIMIT - 2, stats
