"""The Data Query bulk path against the emulator over loopback HTTP: the records one export job stages
are exactly those Object Query stages (same columns, same text in every field, same newest
updatedDate), in a handful of calls; a failed job, a missing column and the temp file."""

from __future__ import annotations

import csv
import io
import json
import re
import threading
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from airflow.sdk import ObjectStoragePath
from zuora_etl import bulk
from zuora_etl.bulk import ParentScope, extract_bulk
from zuora_etl.catalog import get_object
from zuora_etl.hooks.zuora import DataQueryError, ZuoraDataError, ZuoraHook
from zuora_etl.pipeline import extract_ids, extract_pages
from zuora_etl.staging import read_frame, read_frames
from zuora_etl.windows import Window, floor_second, parse_instant

POLL_S = 0.1


@pytest.fixture
def make_hook(shared_emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_DEFAULT", json.dumps({
        "conn_type": "http", "host": shared_emulator.base_url, "login": "demo-client", "password": "demo-secret",
        "extra": {"backoff_seconds": 0.01, "max_attempts": 3},
    }))  # fmt: skip
    return ZuoraHook


@pytest.fixture
def temp_dir(tmp_path, monkeypatch):
    """Where extract_bulk streams the result file: must be empty again after every export."""
    where = tmp_path / "bulk-tmp"
    where.mkdir()
    monkeypatch.setattr(bulk, "BULK_TEMP_DIR", str(where))
    return where


def window() -> Window:
    hi = floor_second(datetime.now(UTC))
    return Window(hi - timedelta(days=240), hi)


def every_field(name: str, emu) -> list[str]:
    """Every field the emulated tenant has for the object: the SDK's, and its custom fields."""
    return sorted(n for n, _ in emu.objects[get_object(name).endpoint].fields)


def frame(parts: list[str]) -> pd.DataFrame:
    out = pd.concat(list(read_frames(parts)), ignore_index=True)
    return out.sort_values("id").reset_index(drop=True)


def texts(column: pd.Series) -> list[str | None]:
    """Staged values: text, or None (pandas reads an all-null column back as NaN)."""
    out = [None if v is None or (isinstance(v, float) and v != v) else v for v in column.tolist()]
    assert all(v is None or isinstance(v, str) for v in out)
    return out


def assert_same_records(bulk_parts: list[str], oq_parts: list[str], fields: list[str]) -> int:
    got, want = frame(bulk_parts), frame(oq_parts)
    assert list(got.columns) == list(want.columns) == fields
    assert len(got) == len(want) > 0
    assert got["id"].is_unique
    for col in fields:  # same text (or null) in every field of every record
        a, b = texts(got[col]), texts(want[col])
        bad = [(i, x, y) for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]
        assert not bad, f"{col}: {len(bad)} differ, first {bad[0]}"
    return len(got)


CASES = {
    "invoices": ["status.EQ:Posted"],
    "accounts": [],
    "payments": ["status.NE:Error"],
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_bulk_export_stages_exactly_what_object_query_stages(name, make_hook, shared_emulator, tmp_path, temp_dir):
    obj = get_object(name)
    fields = every_field(name, shared_emulator)
    filters = [*window().filters(), *CASES[name]]

    oq_hook = make_hook()
    oq = extract_pages(oq_hook, obj, fields, filters, ObjectStoragePath(f"file://{tmp_path}/oq"), "raw")

    before = datetime.now(UTC)
    hook = make_hook()
    got = extract_bulk(hook, obj, fields, filters, ObjectStoragePath(f"file://{tmp_path}/bulk"), "raw", poll_s=POLL_S)

    rows = assert_same_records(got["parts"], oq["parts"], fields)
    assert got["rows"] == oq["rows"] == rows and got["pages"] == 0
    assert got["max_updated"] == oq["max_updated"] is not None
    snapshot = datetime.fromisoformat(got["snapshot"])
    assert before - timedelta(seconds=1) <= snapshot <= datetime.now(UTC)
    assert got["api_calls"] == hook.api_calls <= 10
    assert list(temp_dir.iterdir()) == []


def test_items_of_posted_invoices_in_a_window_in_one_job_as_object_query_reads_them_by_parent(
    make_hook, shared_emulator, tmp_path, temp_dir
):
    invoices, items = get_object("invoices"), get_object("invoice_items")
    fields = every_field("invoice_items", shared_emulator)
    scope = ParentScope(invoices, "invoiceId", [*window().filters(), "status.EQ:Posted"])

    # Object Query: the parents' ids first, then their items 40 parents at a time
    parents_hook = make_hook()
    parents = extract_pages(parents_hook, invoices, ["id", "updatedDate"], list(scope.filters),
                            ObjectStoragePath(f"file://{tmp_path}/parents"), "raw")  # fmt: skip
    ids = [i for part in parents["parts"] for i in read_frame(part)["id"]]
    oq = extract_ids(make_hook, items, "invoiceId", ids, fields, [], ObjectStoragePath(f"file://{tmp_path}/oq"))
    oq_calls = parents_hook.api_calls + oq["api_calls"]

    before = datetime.now(UTC)
    hook = make_hook()
    got = extract_bulk(hook, items, fields, [], ObjectStoragePath(f"file://{tmp_path}/bulk"), "raw", parent=scope,
                       poll_s=POLL_S)  # fmt: skip

    rows = assert_same_records(got["parts"], oq["parts"], fields)
    assert rows > 1000  # a few thousand records...
    assert got["api_calls"] <= 10 < 20 < oq_calls  # ...in a handful of calls instead of dozens
    assert got["max_updated"] == oq["max_updated"]
    assert before - timedelta(seconds=1) <= datetime.fromisoformat(got["snapshot"]) <= datetime.now(UTC)
    staged = frame(got["parts"])
    assert set(staged["invoiceId"]) <= set(ids)
    assert list(temp_dir.iterdir()) == []


def test_the_whole_history_of_invoice_items_takes_a_handful_of_calls(make_hook, shared_emulator, tmp_path, temp_dir):
    items = get_object("invoice_items")
    fields = ["id", "updatedDate", "invoiceId", "chargeAmount", "serviceStartDate"]
    filters = Window(None, floor_second(datetime.now(UTC))).filters()
    oq_hook, hook = make_hook(), make_hook()
    oq = extract_pages(oq_hook, items, fields, filters, ObjectStoragePath(f"file://{tmp_path}/oq"), "raw")
    got = extract_bulk(hook, items, fields, filters, ObjectStoragePath(f"file://{tmp_path}/bulk"), "raw",
                       poll_s=POLL_S)  # fmt: skip
    assert assert_same_records(got["parts"], oq["parts"], fields) > 2000
    assert got["max_updated"] == oq["max_updated"]
    assert hook.api_calls <= 10 and oq_hook.api_calls > 20


def test_a_failed_job_raises_a_fatal_data_query_error(make_hook, tmp_path, temp_dir):
    hook = make_hook()
    with pytest.raises(DataQueryError, match=r"failed: .*nosuchfield") as info:
        extract_bulk(hook, get_object("invoices"), ["id", "updatedDate", "noSuchField"], [],
                     ObjectStoragePath(f"file://{tmp_path}/bulk"), "raw", poll_s=POLL_S)  # fmt: skip
    assert info.value.fatal and info.value.query_status == "failed"
    assert not (tmp_path / "bulk").exists()
    assert list(temp_dir.iterdir()) == []


def test_a_result_without_a_requested_column_is_an_error_naming_it(make_hook, tmp_path, temp_dir, monkeypatch):
    # Data Query answering without a column (a renamed field, a tenant without it): never a dropped column
    monkeypatch.setattr(
        bulk, "bulk_sql", lambda obj, fields, filters, parent=None: (
            "SELECT invoice.id AS id, to_iso8601(invoice.updateddate) AS updateddate FROM invoice"
        ),
    )  # fmt: skip
    with pytest.raises(ZuoraDataError, match=r"no column for amount\b"):
        extract_bulk(make_hook(), get_object("invoices"), ["id", "updatedDate", "amount"], [],
                     ObjectStoragePath(f"file://{tmp_path}/bulk"), "raw", poll_s=POLL_S)  # fmt: skip
    assert list(temp_dir.iterdir()) == []


def test_the_emulators_full_field_export_is_written_as_zuoras_data_query_writes_it(make_hook, shared_emulator):
    hook = make_hook()
    job = hook.wait_for_query(hook.submit_query("SELECT * FROM invoice WHERE posteddate IS NOT NULL LIMIT 5"), 10, 0.1)
    rows = list(csv.DictReader(io.StringIO(hook.download_query_result(job))))
    assert rows and all(name == name.lower() for name in rows[0])
    zone = "America/Los_Angeles"  # the emulated tenant's zone (Live renders the tenant's zone)
    stamp = re.compile(rf"^\d{{4}}-\d{{2}}-\d{{2}} \d{{2}}:\d{{2}}:\d{{2}}\.\d{{3}} {zone}$")
    for row in rows:
        assert stamp.match(row["updateddate"]) and stamp.match(row["posteddate"])
        assert re.match(r"^\d{4}-\d{2}-\d{2}$", row["invoicedate"])
        assert re.match(r"^-?\d+\.\d{6}$", row["amount"])  # decimal(18,6)
        assert row["issplit"] in ("", "true", "false")
    assert shared_emulator.clock.tz.key == zone


@pytest.fixture
def capped_tenant(monkeypatch):
    """A tenant whose Data Query refuses results over 150 records (Zuora's limit is 500,000)."""
    from include.zuora_emulator import Emulator

    with Emulator(scale="small", seed=42, data_query_max_rows=150) as emu:
        monkeypatch.setenv("AIRFLOW_CONN_ZUORA_DEFAULT", json.dumps({
            "conn_type": "http", "host": emu.base_url, "login": "demo-client", "password": "demo-secret",
            "extra": {"backoff_seconds": 0.01, "max_attempts": 3},
        }))  # fmt: skip
        yield emu


def test_an_export_over_the_output_limit_is_read_again_in_halves(capped_tenant, tmp_path, temp_dir):
    obj = get_object("invoices")
    fields = ["id", "updatedDate", "status", "amount", "invoiceNumber"]
    whole = Window(None, floor_second(datetime.now(UTC)))
    by_export = bulk.export_windows(
        ZuoraHook, obj, fields, [], [whole], ObjectStoragePath(f"file://{tmp_path}/dq"), "raw-bulk"
    )
    oq = extract_pages(ZuoraHook(), obj, fields, whole.filters(), ObjectStoragePath(f"file://{tmp_path}/oq"), "raw")
    rows = assert_same_records(by_export["parts"], oq["parts"], fields)
    assert rows > 150 and len(by_export["bulk"]["jobs"]) >= 2  # each export under the limit
    assert by_export["bulk"]["parts"] == by_export["parts"]
    assert by_export["max_updated"] == oq["max_updated"]  # all older than the snapshot less an hour
    assert not list(temp_dir.iterdir())


@pytest.mark.parametrize(
    ("newest", "snapshot", "watermark"),
    [
        ("2026-01-01T09:00:00+00:00", "2026-01-01T12:00:00+00:00", "2026-01-01T09:00:00+00:00"),
        ("2026-01-01T11:30:00-08:00", "2026-01-01T20:00:00+00:00", "2026-01-01T19:00:00+00:00"),  # within the hour
        (None, "2026-01-01T12:00:00+00:00", None),
    ],
)
def test_the_watermark_after_an_export_stops_an_hour_before_its_snapshot(newest, snapshot, watermark):
    assert bulk.watermark_after_export(newest, datetime.fromisoformat(snapshot)) == watermark


def test_the_count_gives_the_records_of_each_minute_object_query_reads(make_hook, shared_emulator, tmp_path):
    """The plan's Data Query count (a few calls) carries the records per minute by which a first
    load is split: exactly the minutes of the updatedDates Object Query pages give."""
    invoices = get_object("invoices")
    filters = ["status.EQ:Posted"]
    oq = extract_pages(make_hook(), invoices, ["id", "updatedDate"], [*window().filters(), *filters],
                       ObjectStoragePath(f"file://{tmp_path}/oq"), "raw")  # fmt: skip
    stamps = [parse_instant(t) for part in oq["parts"] for t in read_frame(part)["updatedDate"]]
    want: dict[int, int] = {}
    for stamp in stamps:
        want[int(stamp.timestamp()) // 60] = want.get(int(stamp.timestamp()) // 60, 0) + 1

    hook = make_hook()
    records, total, first, minutes = bulk.count_window(hook, invoices, filters, window())
    assert dict(minutes) == want and records == len(stamps) == sum(want.values()) > 0
    assert total == records and first == datetime.fromtimestamp(min(want) * 60, UTC)
    assert hook.api_calls <= 6


def test_the_count_of_an_object_and_of_its_children_run_side_by_side(make_hook, monkeypatch, tmp_path):
    """A parent's count and its children's are separate jobs, awaited together: each job's wait
    meets the other's at a barrier (one after another, the first would wait alone and break it),
    and the total adds exactly the items of the invoices counted."""
    invoices, items = get_object("invoices"), get_object("invoice_items")
    filters = ["status.EQ:Posted"]
    where = ObjectStoragePath(f"file://{tmp_path}")
    posted = extract_pages(
        make_hook(), invoices, ["id", "updatedDate"], [*window().filters(), *filters], where / "inv", "raw"
    )
    ids = {i for part in posted["parts"] for i in read_frame(part)["id"]}
    ever = Window(datetime(2000, 1, 1, tzinfo=UTC), window().hi).filters()  # invoice items need a filter
    every_item = extract_pages(make_hook(), items, ["id", "updatedDate", "invoiceId"], ever, where / "items", "raw")
    want_items = sum(int(i in ids) for part in every_item["parts"] for i in read_frame(part)["invoiceId"])

    hook = make_hook()
    barrier, wait = threading.Barrier(2, timeout=20), hook.wait_for_query

    def together(job_id: str, timeout_s: float, poll_s: float) -> dict:
        barrier.wait()
        return wait(job_id, timeout_s, poll_s)

    monkeypatch.setattr(hook, "wait_for_query", together)
    records, total, _, _ = bulk.count_window(hook, invoices, filters, window(), [(items, "invoiceId", [])])
    assert records == len(ids) > 0 and want_items > 0 and total == records + want_items
