"""What an HTTP target (an ERP's or CRM's REST API) receives: `include/endpoints/<object>.yaml` ->
validated models, payloads rendered from templates, digests and idempotency keys.

One file per target object (the mapping's name, e.g. `invoices`) says how its documents travel:

    create: {method: POST, endpoint: /api/v1/invoices}          # batch_size > 1: batch_endpoint
    update: {method: PUT, endpoint: "/api/v1/invoices/{id}"}     # {id}: the Zuora id
    cancel: {method: POST, endpoint: "/api/v1/invoices/{id}/cancel"}   # optional
    payload:                     # a JSON template over the mapping's columns
      invoice:
        external_id: "{{ id }}"
        amount: "{{ amount }}"   # a leaf that is one expression keeps the value's type
        items: {for_each: invoice_items, template: {description: "{{ charge_name }}"}}

A `for_each` node nests a child object's rows (those naming this record through the family's
parent link): the document is composed before delivery and its children never travel alone.
`{{ row }}` is every mapped column at once (a CRM object sent as the mapping shapes it). Templates
are Jinja (Airflow's own template language) in a sandbox.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

import pandas as pd
import yaml
from jinja2 import StrictUndefined, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .settings import include_dir

Action = Literal["create", "update", "cancel"]
EXPRESSION_RE = re.compile(r"^\{\{\s*(.+?)\s*\}\}$", re.S)
FOR_EACH = "for_each"
ROW = "row"  # the template variable holding every mapped column
# Documents per batch request at most: the reference ERP's bound and a common one (NetSuite and
# Salesforce composite APIs take 25-200); larger batches make one refusal cost more to isolate.
MAX_BATCH = 100

_env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class Call(BaseModel):
    """One kind of request: method and endpoint (relative to the connection's host)."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["POST", "PUT", "PATCH"]
    endpoint: str
    batch_size: int = Field(default=1, ge=1, le=MAX_BATCH)  # create only: documents per request
    batch_endpoint: str | None = None  # takes {batch_key: [documents]}, answers {results_key: [...]}
    batch_key: str = "documents"
    results_key: str = "results"
    payload: Any = None  # cancel only: a template of its own (default: no body)

    def path(self, record_id: str) -> str:
        return self.endpoint.replace("{id}", quote(str(record_id), safe=""))


class Endpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    object: str  # the target object: a mapping's name
    create: Call
    update: Call
    cancel: Call | None = None  # absent: a delivered record that leaves the family's scope is updated
    payload: dict[str, Any]

    @model_validator(mode="after")
    def _check(self) -> Endpoint:
        if self.create.batch_size > 1 and not self.create.batch_endpoint:
            raise ValueError("create.batch_size > 1 needs create.batch_endpoint")
        for name, call in (("update", self.update), ("cancel", self.cancel)):
            if call is not None and call.batch_size != 1:
                raise ValueError(f"{name}: only create is batched")
        for name in template_names(self.payload):
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"payload names {name!r}, not a column name")
        return self

    @property
    def children(self) -> list[str]:
        """Child objects nested in this payload (`for_each`)."""
        return list(dict.fromkeys(_children(self.payload)))

    def check_columns(self, columns: set[str], child_columns: dict[str, set[str]]) -> None:
        """Every name a template reads is a mapped column (of the child, inside a `for_each`)."""
        problems = []
        for node_object, names in _names_by_scope(self.payload, self.object):
            known = {ROW, *(columns if node_object == self.object else child_columns.get(node_object, set()))}
            problems += [f"{n} (of {node_object})" for n in names if n not in known]
        if problems:
            raise ValueError(f"endpoint {self.object}: the payload reads unknown columns: {', '.join(problems)}")


def endpoints_dir() -> Path:
    return include_dir() / "endpoints"


def load_endpoint(path: Path) -> Endpoint:
    try:
        return Endpoint.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except Exception as exc:
        raise ValueError(f"{path}: {exc}") from exc


@cache
def _endpoints(directory: Path) -> dict[str, Endpoint]:
    found = {}
    for path in sorted(directory.glob("*.yaml")):
        endpoint = load_endpoint(path)
        found[endpoint.object] = endpoint
    return found


def endpoints(directory: Path | None = None) -> dict[str, Endpoint]:
    return _endpoints(directory or endpoints_dir())


def endpoint_for(name: str, directory: Path | None = None) -> Endpoint | None:
    """The endpoint of target object `name`; None when it travels nested in a parent's payload."""
    found = endpoints(directory)
    if name in found:
        return found[name]
    if any(name in e.children for e in found.values()):
        return None
    raise ValueError(
        f"no HTTP endpoint for {name}: add {(directory or endpoints_dir()) / f'{name}.yaml'} (create, update, "
        "payload), or nest it in its parent's payload with for_each"
    )


# ---------- rendering ----------


def json_value(value: Any) -> Any:
    """A mapped value as JSON: decimals as numbers, dates as ISO text, datetimes as UTC ISO text."""
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Decimal):
        return float(value) if value == value else None
    if isinstance(value, (pd.Timestamp, datetime)):
        stamp = pd.Timestamp(value)
        return None if pd.isna(stamp) else stamp.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "item"):  # a numpy scalar
        return json_value(value.item())
    return value


def render(template: Any, row: dict[str, Any], children: dict[str, list[dict]] | None = None) -> Any:
    """The template with `row`'s values; `for_each` nodes list the row's children of that object."""
    if isinstance(template, dict):
        if FOR_EACH in template:
            rows = (children or {}).get(template[FOR_EACH], [])
            return [render(template.get("template", {}), child) for child in rows]
        return {k: render(v, row, children) for k, v in template.items()}
    if isinstance(template, list):
        return [render(v, row, children) for v in template]
    if isinstance(template, str) and "{{" in template:
        values = {k: json_value(v) for k, v in row.items()}
        values[ROW] = dict(values)
        whole = EXPRESSION_RE.match(template)
        if whole:
            return json_value(_expression(whole.group(1))(**values))
        return _text(template).render(**values)
    return template


@cache
def _expression(source: str):
    return _env.compile_expression(source, undefined_to_none=False)


@cache
def _text(source: str):
    return _env.from_string(source)


def digest(payload: Any) -> str:
    """sha256 of the payload's canonical JSON: the same document twice gives the same digest."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def idempotency_key(obj: str, record_id: str, updated: Any, action: Action, payload_digest: str) -> str:
    """Derived from the Zuora id and version (updatedDate), the action and what is sent: a retried
    request, in this run or a later one, carries the same key and the target answers it once."""
    version = pd.Timestamp(updated).strftime("%Y%m%dT%H%M%SZ") if updated is not None else "none"
    return f"zuora-{obj}-{record_id}-{version}-{action}-{payload_digest[:16]}"


def batch_key(keys: list[str]) -> str:
    return "zuora-batch-" + hashlib.sha256("\n".join(keys).encode()).hexdigest()[:40]


# ---------- template inspection ----------


def _children(template: Any) -> list[str]:
    if isinstance(template, dict):
        if FOR_EACH in template:
            return [template[FOR_EACH]]
        return [c for v in template.values() for c in _children(v)]
    if isinstance(template, list):
        return [c for v in template for c in _children(v)]
    return []


def _names(template: Any) -> set[str]:
    if isinstance(template, dict):
        return {n for k, v in template.items() if k != FOR_EACH for n in _names(v)}
    if isinstance(template, list):
        return {n for v in template for n in _names(v)}
    if isinstance(template, str) and "{{" in template:
        return set(meta.find_undeclared_variables(_env.parse(template)))
    return set()


def template_names(template: Any) -> set[str]:
    """Every variable the template reads, children's included."""
    return {n for _, names in _names_by_scope(template, "") for n in names}


def _names_by_scope(template: Any, obj: str) -> list[tuple[str, set[str]]]:
    """(object, names read from it) for the template and each `for_each` inside it."""
    if isinstance(template, dict):
        if FOR_EACH in template:
            return _names_by_scope(template.get("template", {}), template[FOR_EACH])
        out: list[tuple[str, set[str]]] = []
        for v in template.values():
            out += _names_by_scope(v, obj)
        return out
    if isinstance(template, list):
        return [pair for v in template for pair in _names_by_scope(v, obj)]
    return [(obj, _names(template))]
