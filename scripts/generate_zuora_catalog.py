"""Generate include/zuora_catalog.json from Zuora's official Python SDK (the source of truth).

Zuora publishes its Object Query models in `zuora-sdk` (`zuora_sdk/models/expanded_<object>.py`:
field names, their JSON aliases, their types, and relations typed `Expanded...`). This script
downloads the pinned wheel with pip (never installing it: the SDK pins old urllib3 and certifi, so
it must not become a runtime dependency), reads the model sources with `ast` and writes one JSON
catalog that both the ETL library and the emulator derive their object specs from.

    python -m scripts.generate_zuora_catalog            # write include/zuora_catalog.json
    python -m scripts.generate_zuora_catalog --check    # exit 1 when the checked-in file drifts
    python -m scripts.generate_zuora_catalog --wheel path/to/zuora_sdk-3.21.0-py3-none-any.whl

Types: `date` for the SDK's `date` (date-only fields), `integer` (StrictInt), `number`
(StrictFloat or StrictInt), `boolean` (StrictBool), and for the SDK's strings either `datetime`
or `string`. The SDK types datetimes as plain strings (`"2025-06-01T03:00:00-07:00"`); Zuora names
every one of them `...Date`, `...On` or `...Time`, and a date-only field is never a string in the
SDK, so a string field with such a name is a datetime.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CATALOG_PATH = ROOT / "include" / "zuora_catalog.json"
SDK_REQUIREMENT = "zuora-sdk==3.21.0"

# Object Query endpoints in scope (../shared/ZUORA_API.md) -> the SDK module that models them.
MODELS = {
    "accounts": "expanded_account",
    "contacts": "expanded_contact",
    "subscriptions": "expanded_subscription",
    "rate-plans": "expanded_rate_plan",
    "rate-plan-charges": "expanded_rate_plan_charge",
    "rate-plan-charge-tiers": "expanded_rate_plan_charge_tier",
    "orders": "expanded_orders",
    "order-actions": "expanded_order_action",
    "order-line-items": "expanded_order_line_item",
    "invoices": "expanded_invoice",
    "invoice-items": "expanded_invoice_item",
    "payments": "expanded_payment",
    "refunds": "expanded_refund",
    "credit-memos": "expanded_credit_memo",
    "credit-memo-items": "expanded_credit_memo_item",
    "debit-memos": "expanded_debit_memo",
    "debit-memo-items": "expanded_debit_memo_item",
    "amendments": "expanded_amendment",
    "products": "expanded_product",
}
SCALARS = {
    "StrictStr": "string",
    "date": "date",
    "StrictInt": "integer",
    "Union[StrictFloat, StrictInt]": "number",
    "StrictBool": "boolean",
}
DATETIME_NAME = re.compile(r"(Date|On|Time)$")


def download_wheel(directory: Path) -> Path:
    """The pinned SDK wheel from the package index, without its dependencies."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
         "--dest", str(directory), SDK_REQUIREMENT],
        check=True,
    )  # fmt: skip
    wheels = sorted(directory.glob("zuora_sdk-*.whl"))
    if not wheels:
        raise SystemExit(f"pip did not download a wheel of {SDK_REQUIREMENT}")
    return wheels[-1]


def _unwrap_optional(annotation: str) -> str:
    match = re.fullmatch(r"Optional\[(.*)\]", annotation)
    return match.group(1) if match else annotation


def _alias(value: ast.expr | None) -> str | None:
    if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "Field":
        for kw in value.keywords:
            if kw.arg == "alias" and isinstance(kw.value, ast.Constant):
                return kw.value.value
    return None


def parse_model(source: str, module: str) -> dict:
    """One model's fields (JSON name -> type) and relations (JSON name -> Expanded model)."""
    tree = ast.parse(source)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name.startswith("Expanded")]
    if len(classes) != 1:
        raise ValueError(f"{module}: expected one Expanded model class, found {len(classes)}")
    cls = classes[0]
    fields: dict[str, str] = {}
    relations: dict[str, str] = {}
    for node in cls.body:
        if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
            continue
        attr, annotation = node.target.id, ast.unparse(node.annotation)
        if annotation.startswith(("ClassVar", "Dict")):  # class constants, additional_properties
            continue
        name = _alias(node.value) or attr
        inner = _unwrap_optional(annotation)
        if "Expanded" in inner:
            relations[name] = inner
            continue
        if inner not in SCALARS:
            raise ValueError(f"{module}.{name}: unknown SDK type {annotation}")
        kind = SCALARS[inner]
        if kind == "string" and DATETIME_NAME.search(name):
            kind = "datetime"
        fields[name] = kind
    return {"model": cls.name, "fields": fields, "relations": relations}


def build_catalog(wheel: Path) -> dict:
    objects = {}
    with zipfile.ZipFile(wheel) as zf:
        for endpoint, module in MODELS.items():
            source = zf.read(f"zuora_sdk/models/{module}.py").decode("utf-8")
            objects[endpoint] = parse_model(source, module)
    return {
        "source": f"{SDK_REQUIREMENT} (zuora_sdk/models/expanded_*.py), generated by scripts/generate_zuora_catalog.py",
        "types": "string | datetime (SDK string named *Date, *On, *Time) | date | integer | number | boolean",
        "objects": objects,
    }


def render(catalog: dict) -> str:
    return json.dumps(catalog, indent=1, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wheel", type=Path, help="a downloaded zuora-sdk wheel (default: download it)")
    parser.add_argument("--check", action="store_true", help="compare with the checked-in catalog, write nothing")
    parser.add_argument("--output", type=Path, default=CATALOG_PATH)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        text = render(build_catalog(wheel))
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current == text:
            print(f"{args.output} matches {SDK_REQUIREMENT}")
            return 0
        diff = difflib.unified_diff(current.splitlines(), text.splitlines(), str(args.output), "generated", lineterm="")
        print("\n".join(list(diff)[:80]))
        print(f"{args.output} drifted from {SDK_REQUIREMENT}: run python -m scripts.generate_zuora_catalog")
        return 1
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}: {len(MODELS)} objects from {SDK_REQUIREMENT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
