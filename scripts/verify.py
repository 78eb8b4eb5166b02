"""Compare a family's target with the emulated tenant, record by record and column by column:
Zuora's records under the family's filters, mapped as the sync maps them, against the target rows
(a SQL target) or rendered as the endpoint's payload, children nested, against the documents an
HTTP target holds. Used by the demo's final table and by the end-to-end tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from zuora_etl.catalog import get_object
from zuora_etl.db import engine_for
from zuora_etl.delivery import endpoint_for, render
from zuora_etl.families import Family
from zuora_etl.mapping import apply_mapping, cached_mapping
from zuora_etl.sinks.base import records
from zuora_etl.sinks.sql import table_for
from zuora_etl.staging import as_text

from include.zuora_emulator import Emulator
from include.zuora_emulator.schema import OBJECTS as EMULATED


@dataclass
class Comparison:
    object: str
    table: str
    zuora: int
    target: int
    missing: list[str] = field(default_factory=list)  # in Zuora, not in the target
    extra: list[str] = field(default_factory=list)  # in the target, not in Zuora
    differing: list[tuple[dict, dict]] = field(default_factory=list)  # (Zuora, target) rows

    @property
    def equal(self) -> bool:
        return not (self.missing or self.extra or self.differing)


def _norm(value: Any) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)) or hasattr(value, "as_tuple"):
        return round(float(value), 6)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


def expected_rows(emu: Emulator, family: Family, obj_name: str) -> dict[str, dict]:
    fobj = family.get(obj_name)
    endpoint = get_object(obj_name).endpoint
    spec = EMULATED[endpoint]
    if fobj.parent:
        parents = expected_rows(emu, family, fobj.parent.object)
        truth = [r for r in emu.store.truth(endpoint) if r.get(fobj.parent.key) in parents]
    else:
        truth = emu.store.truth(endpoint, [emu.store.parse_filter(spec, f) for f in fobj.selection])
    mapping = cached_mapping(fobj.mapping_name)
    raw = pd.DataFrame([{k: as_text(v) for k, v in r.items()} for r in truth], columns=list(spec.types))
    good, _ = apply_mapping(mapping, raw)
    return {r[mapping.key]: {k: _norm(v) for k, v in r.items()} for r in records(good)}


def target_rows(engine: sa.Engine, mapping_name: str) -> dict[str, dict]:
    mapping = cached_mapping(mapping_name)
    table = table_for(mapping, sa.MetaData())
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table(mapping.table):
            return {}
        rows = conn.execute(sa.select(table)).mappings().all()
    return {r[mapping.key]: {k: _norm(v) for k, v in r.items()} for r in rows}


def compare_family(emu: Emulator, family: Family) -> list[Comparison]:
    engine = engine_for(family.sink)
    out = []
    for o in family.objects:
        want = expected_rows(emu, family, o.name)
        got = target_rows(engine, o.mapping_name)
        out.append(Comparison(
            object=o.name, table=f"{family.sink}.{cached_mapping(o.mapping_name).table}", zuora=len(want),
            target=len(got), missing=sorted(set(want) - set(got)), extra=sorted(set(got) - set(want)),
            differing=[(want[k], got[k]) for k in sorted(set(want) & set(got)) if want[k] != got[k]],
        ))  # fmt: skip
    return out


def expected_documents(emu: Emulator, family: Family, obj_name: str) -> dict[str, Any]:
    """What an HTTP target should hold for `obj_name`: each record in the family's scope rendered
    through its endpoint's payload, its nested children composed in (delivery.py)."""
    mapping = cached_mapping(family.get(obj_name).mapping_name)
    endpoint = endpoint_for(mapping.object)
    mapped = records(apply_mapping(mapping, _frame(obj_name, _truth(emu, family, obj_name)))[0])
    parents = {r[mapping.key] for r in mapped}
    children: dict[str, dict[str, list[dict]]] = {}
    for child in (o for o in family.objects if o.parent and o.parent.object == obj_name):
        child_mapping = cached_mapping(child.mapping_name)
        by_parent: dict[str, list[dict]] = {}
        for r in emu.store.truth(get_object(child.name).endpoint):
            if r.get(child.parent.key) in parents:
                by_parent.setdefault(r[child.parent.key], []).append(r)
        children[child.name] = {
            pid: sorted(records(apply_mapping(child_mapping, _frame(child.name, recs))[0]), key=lambda x: x["id"])
            for pid, recs in by_parent.items()
        }
    return {
        r[mapping.key]: render(endpoint.payload, r, {n: kids.get(r[mapping.key], []) for n, kids in children.items()})
        for r in mapped
    }


def compare_api(emu: Emulator, family: Family, documents) -> list[Comparison]:
    """Each object of `family` that an HTTP target receives on its own (`documents(collection)`
    lists the target's active documents): the documents equal Zuora's records rendered."""
    out = []
    for o in family.objects:
        name = cached_mapping(o.mapping_name).object
        if endpoint_for(name) is None:
            continue  # nested: compared inside its parents' documents
        want = expected_documents(emu, family, o.name)
        got = {d["external_id"]: d["document"] for d in documents(name) if d["status"] == "active"}
        out.append(Comparison(
            object=o.name, table=f"{family.sink} /{name}", zuora=len(want), target=len(got),
            missing=sorted(set(want) - set(got)), extra=sorted(set(got) - set(want)),
            differing=[(want[k], got[k]) for k in sorted(set(want) & set(got)) if want[k] != got[k]],
        ))  # fmt: skip
    return out


def _truth(emu: Emulator, family: Family, obj_name: str) -> list[dict]:
    fobj = family.get(obj_name)
    endpoint = get_object(obj_name).endpoint
    return emu.store.truth(endpoint, [emu.store.parse_filter(EMULATED[endpoint], f) for f in fobj.selection])


def _frame(obj_name: str, recs) -> pd.DataFrame:
    spec = EMULATED[get_object(obj_name).endpoint]
    return pd.DataFrame([{k: as_text(v) for k, v in r.items()} for r in recs], columns=list(spec.types))
