from __future__ import annotations

import os
import time

import pandas as pd
import pytest
from airflow.sdk import ObjectStoragePath
from zuora_etl.settings import PART_ROWS
from zuora_etl.staging import FrameWriter, PartWriter, part_rows_for, read_frame, sweep_stale_runs


def test_parts_keep_every_field_as_text_and_accept_another_casing(tmp_path):
    writer = PartWriter(ObjectStoragePath(f"file://{tmp_path}"), "raw", ["id", "amount", "autoPay", "CRMAccountId__c"])
    writer.add([{"id": "a", "amount": 1.5, "autoPay": True, "crmAccountId__c": "001"}, {"id": "b"}])
    writer.flush()
    frame = read_frame(writer.parts[0])
    assert frame.astype(object).where(frame.notna(), None).to_dict("records") == [
        {"id": "a", "amount": "1.5", "autoPay": "true", "CRMAccountId__c": "001"},
        {"id": "b", "amount": None, "autoPay": None, "CRMAccountId__c": None},
    ]


def test_parts_are_bounded_in_rows(tmp_path):
    writer = PartWriter(ObjectStoragePath(f"file://{tmp_path}"), "raw", ["id"])
    writer.add({"id": str(i)} for i in range(PART_ROWS * 2 + 5))
    writer.flush()
    assert len(writer.parts) == 3 and writer.rows == PART_ROWS * 2 + 5


def test_sweep_removes_only_runs_older_than_the_retention(tmp_path):
    family = tmp_path / "crm_invoices"
    for run, age_days in [("old_failed_run", 9), ("recent_failed_run", 2)]:
        part = family / run / "invoices" / "raw-00000.parquet"
        part.parent.mkdir(parents=True)
        part.write_bytes(b"x")
        stamp = time.time() - age_days * 86400
        os.utime(part, (stamp, stamp))
    removed = sweep_stale_runs(ObjectStoragePath(f"file://{family}"), time.time())
    assert removed == ["old_failed_run"]
    assert sorted(p.name for p in family.iterdir()) == ["recent_failed_run"]


@pytest.mark.parametrize(("threads", "rows"), [(1, 20_000), (4, 5_000), (8, 2_500), (16, 2_500)])
def test_threads_of_a_task_share_one_part_budget(threads, rows):
    assert part_rows_for(threads) == rows


def test_typed_frames_are_gathered_into_parts_of_at_least_the_budget(tmp_path):
    """The transform's output: the 2,500-row raw parts of eight threads become parts a load writes
    in one transaction each; rows, order and types are kept."""
    writer = FrameWriter(ObjectStoragePath(f"file://{tmp_path}"), "mapped", part_rows=5_000)
    stamps = pd.date_range("2026-01-01", periods=2_500, freq="s")
    for n in range(5):
        writer.add(pd.DataFrame({"id": [f"{n}-{i}" for i in range(2_500)], "updated_date": stamps}))
    writer.add(pd.DataFrame({"id": [], "updated_date": pd.to_datetime([])}))  # an all-rejected part
    writer.flush()
    frames = [read_frame(p) for p in writer.parts]
    assert [len(f) for f in frames] == [5_000, 5_000, 2_500]
    assert pd.concat(frames)["id"].tolist() == [f"{n}-{i}" for n in range(5) for i in range(2_500)]
    assert all(f["updated_date"].dtype.kind == "M" for f in frames)
