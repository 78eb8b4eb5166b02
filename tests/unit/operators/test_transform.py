"""ZuoraTransformOperator on its own: mapped parts, quarantine, slices merged, systemic failure."""

from __future__ import annotations

import shutil

import pytest
from airflow.sdk.exceptions import AirflowFailException
from zuora_etl.mapping import _cached_mapping
from zuora_etl.operators.extract import ZuoraObjectQueryOperator
from zuora_etl.operators.transform import ZuoraTransformOperator
from zuora_etl.windows import Window

from tests.airflow_env import ROOT
from tests.unit.operators.conftest import context, everything


def extract(**kwargs) -> dict:
    op = ZuoraObjectQueryOperator(task_id="extract", family="crm_invoices", zuora_object="invoices", **kwargs)
    return op.execute(context(map_index=kwargs.pop("map_index", -1)))


def transform(manifest, **kwargs) -> dict:
    return ZuoraTransformOperator(task_id="transform", zuora_object="invoices", manifest=manifest, **kwargs).execute(
        context()
    )


def test_maps_every_slice_of_a_mapped_extract_as_one(env):
    whole = Window.from_dict(everything()[0] | {"lo": "2000-01-01T00:00:00+00:00"})
    slices = [
        ZuoraObjectQueryOperator(task_id="extract", family="crm_invoices", zuora_object="invoices",
                                 window=s.to_dict()).execute(context(map_index=i))
        for i, s in enumerate(whole.split(3))
    ]  # fmt: skip
    result = transform(slices)
    assert result["rows_in"] == result["rows_out"] == len(env.emu.store.truth("invoices"))
    assert result["quarantined"] == 0 and result["parts"] and result["raw_parts"]


@pytest.fixture
def strict_status(env, tmp_path, monkeypatch):
    """A mapping allowing only the statuses the tenant has now; a record given another one fails."""
    statuses = sorted({r["status"] for r in env.emu.store.truth("invoices")})
    root = tmp_path / "include"
    shutil.copytree(ROOT / "include", root, ignore=shutil.ignore_patterns("zuora_emulator"))
    path = root / "mappings" / "invoices.yaml"
    strict = f"status: {{source: status, type: string, allowed: [{', '.join(statuses)}]}}"
    path.write_text(path.read_text().replace("status: {source: status, type: string}", strict))
    monkeypatch.setenv("ZUORA_ETL_INCLUDE_DIR", str(root))
    _cached_mapping.cache_clear()
    yield
    _cached_mapping.cache_clear()


def test_bad_records_are_quarantined_with_their_reason(env, strict_status):
    bad = env.emu.store.truth("invoices")[:3]
    env.emu.store.mutate([{"op": "update", "object": "invoices", "ids": [r["id"] for r in bad],
                           "set": {"status": "Bogus"}}])  # fmt: skip
    result = transform(extract(windows=everything()))
    assert result["quarantined"] == 3 and result["column_failures"]["status"]["records"] == 3
    assert result["rows_out"] == result["rows_in"] - 3


def test_a_field_failing_most_records_fails_before_anything_loads(env, strict_status):
    env.emu.store.mutate([{"op": "update", "object": "invoices", "count": 1000, "set": {"status": "Bogus"}}])
    with pytest.raises(AirflowFailException, match="fail on status"):
        transform(extract(windows=everything()))
