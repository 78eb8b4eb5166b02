"""The schema catalog: generated from Zuora's SDK, checked in, and the library's source of fields."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from zuora_etl.catalog import CATALOG_PATH, OBJECTS

from scripts.generate_zuora_catalog import MODELS, SDK_REQUIREMENT, build_catalog, parse_model, render
from tests.airflow_env import ROOT

MODEL = """
class ExpandedThing(BaseModel):
    account_id: Optional[StrictStr] = Field(default=None, alias="accountId")
    amount: Optional[Union[StrictFloat, StrictInt]] = None
    posted_date: Optional[StrictStr] = Field(default=None, alias="postedDate")
    cancelled_on: Optional[StrictStr] = Field(default=None, alias="cancelledOn")
    due_date: Optional[date] = Field(default=None, alias="dueDate")
    tier: Optional[StrictInt] = None
    auto_pay: Optional[StrictBool] = Field(default=None, alias="autoPay")
    bill_to: Optional[ExpandedContact] = Field(default=None, alias="billTo")
    items: Optional[List[ExpandedItem]] = None
    additional_properties: Dict[str, Any] = {}
    __properties: ClassVar[List[str]] = ["accountId"]
"""


def test_models_parse_into_fields_types_and_relations():
    parsed = parse_model(MODEL, "expanded_thing")
    assert parsed["model"] == "ExpandedThing"
    assert parsed["fields"] == {"accountId": "string", "amount": "number", "postedDate": "datetime",
                                "cancelledOn": "datetime", "dueDate": "date", "tier": "integer",
                                "autoPay": "boolean"}  # fmt: skip
    assert parsed["relations"] == {"billTo": "ExpandedContact", "items": "List[ExpandedItem]"}


def test_an_unknown_sdk_type_stops_the_generator():
    with pytest.raises(ValueError, match="unknown SDK type"):
        parse_model("class ExpandedX(BaseModel):\n    x: Optional[Decimal] = None\n", "expanded_x")


def test_the_library_catalog_is_the_generated_one():
    generated = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))["objects"]
    assert {o.endpoint for o in OBJECTS.values()} == set(generated) == set(MODELS)
    for o in OBJECTS.values():
        assert o.fields == generated[o.endpoint]["fields"] and o.relations == generated[o.endpoint]["relations"]
    assert OBJECTS["invoices"].fields["postedDate"] == "datetime"
    assert "billTo" not in OBJECTS["order_line_items"].fields and "billToId" in OBJECTS["order_line_items"].fields


def _wheel(directory: Path) -> Path:
    """The SDK wheel from the package index; skipped where the index cannot be reached, except CI."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
         "--dest", str(directory), SDK_REQUIREMENT],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    wheels = list(directory.glob("zuora_sdk-*.whl"))
    if done.returncode or not wheels:
        if os.environ.get("CI"):
            pytest.fail(f"CI must reach the package index for {SDK_REQUIREMENT}: {done.stderr[-500:]}")
        pytest.skip(f"cannot download {SDK_REQUIREMENT} here: {done.stderr.strip()[-200:]}")
    return wheels[0]


def test_the_checked_in_catalog_has_not_drifted_from_the_sdk():
    with tempfile.TemporaryDirectory() as tmp:
        text = render(build_catalog(_wheel(Path(tmp))))
    assert text == (ROOT / "include" / "zuora_catalog.json").read_text(encoding="utf-8"), (
        "include/zuora_catalog.json drifted from the SDK: run python -m scripts.generate_zuora_catalog"
    )
