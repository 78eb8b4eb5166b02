"""One object's chain of tasks, built the same way for sync, backfill, dry run and replay:

    extract and transform (mapped over slices) -> load [-> mark -> readback: extract -> load]

What the chain reads comes from its source: the plan's windows for this object (one mapped extract
per slice), the ids the plan lists for it (a replay), and/or the records its parent chain read (those
in the parent's scope). Each extract maps what it read in the same task: a separate transform task
bought nothing but a task start and a pass over staging after the last slice, while mapped extracts
transform their slices side by side. The load checks the object as a whole (a field failing most
records) before it writes anything. A child's extract also feeds its parent's load, which waits for
it: a target that nests children in their parents' documents (an ERP's invoice with its lines)
composes them there. Call it inside the object's TaskGroup; it returns the steps' outputs for
`finish` (the watermarks and the report).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from airflow.sdk import TaskGroup

from .conditions import fields
from .families import Family, FamilyObject
from .manifests import ObjectResults
from .mapping import cached_mapping
from .operators.extract import ZuoraObjectQueryOperator
from .operators.load import ZuoraSinkOperator
from .operators.mark import ZuoraMarkTransferredOperator
from .settings import API_POOL

TRANSFERRED_FIELD = "transferredToAccounting"


@dataclass
class Parent:
    """The chain this one reads by: its extract result and load result, and the field of this
    object that names the parent record."""

    chain: ObjectChain
    key: str


@dataclass
class ObjectChain:
    name: str
    extract: Any  # XComArg (of a mapped task when read over slices): what was read, and mapped
    load: Any
    mark: Any = None
    readback: Any = None
    last: Any = None  # the operator everything after the chain waits for
    load_op: Any = None  # the load operator (its children are wired in by the child chains)

    def results(self) -> ObjectResults:
        """The chain's outputs, for `finish` (a step that did not run resolves to None)."""
        out: dict[str, Any] = {"extract": self.extract, "load": self.load}
        if self.mark is not None:
            out.update(mark=self.mark, readback=self.readback)
        return out  # type: ignore[return-value]


def object_chain(
    family: Family,
    o: FamilyObject,
    plan: Any,
    *,
    slices: Any = None,
    parent: Parent | None = None,
    retry_dead_letters: bool = True,
) -> ObjectChain:
    """Build `o`'s chain. `slices` (an XComArg of a list of windows) maps the extract over them;
    without it the extract reads what the plan lists for the object (its windows or ids) and, with
    a `parent`, the records whose `parent.key` names one the parent read."""
    mark_fields = [TRANSFERRED_FIELD] if o.mark_transferred else []
    scope_fields = fields(o.conditions)
    carry = list(dict.fromkeys([*([parent.key] if parent else []), *scope_fields, *mark_fields]))
    common = {"family": family.family, "zuora_object": o.name, "mapping": o.mapping_name, "filters": o.filters,
              "extra_fields": [*mark_fields, *scope_fields], "pool": API_POOL,
              "transform": True, "carry": carry}  # fmt: skip
    if slices is not None:
        extract = ZuoraObjectQueryOperator.partial(
            task_id="extract", plan=plan, retry_dead_letters=retry_dead_letters, **common
        ).expand(windows=slices)
    else:
        extract = ZuoraObjectQueryOperator(
            task_id="extract", plan=plan, retry_dead_letters=retry_dead_letters, **common,
            parent=parent.chain.extract if parent else None, parent_key=parent.key if parent else None,
            parent_conditions=family.get(parent.chain.name).deliver_if if parent else (),
        )  # fmt: skip
    loaded = _load(family, o, plan, extract.output, parent, flag=o.mark_transferred)
    chain = ObjectChain(o.name, extract.output, loaded.output, last=loaded, load_op=loaded)
    if parent:  # the parent's load may nest these records in its documents: it waits for them
        parent.chain.load_op.children[o.name] = extract.output
        parent.chain.load_op.child_keys[o.name] = parent.key
        extract >> parent.chain.load_op
    if o.mark_transferred:
        mark = ZuoraMarkTransferredOperator(
            task_id="mark", family=family.family, zuora_object=o.name, manifest=loaded.output, plan=plan,
            sink_conn_id=family.sink, pool=API_POOL,
        )  # fmt: skip
        with TaskGroup(group_id="readback", tooltip="read the flagged documents again and load the flag"):
            again = ZuoraObjectQueryOperator(
                task_id="extract", parent=mark.output, parent_key="id", subdir="readback", **common
            )
            reloaded = _load(family, o, None, again.output, None)
        chain.mark, chain.readback, chain.last = mark.output, reloaded.output, reloaded
    return chain


def _load(
    family: Family, o: FamilyObject, plan: Any, extracted: Any, parent: Parent | None, flag: bool = False
) -> ZuoraSinkOperator:
    """The load of `o`; `flag`: the load stages what the mark step flags."""
    return ZuoraSinkOperator(
        task_id="load", family=family.family, zuora_object=o.name, manifest=extracted, plan=plan,
        sink_conn_id=family.sink, mapping=o.mapping_name, scope=family.scope(o.name),
        parent_result=parent.chain.load if parent else None, parent_key=parent.key if parent else None,
        deliver_if=o.deliver_if, flag_field=TRANSFERRED_FIELD if flag else None,
        systemic_reject_ratio=family.systemic_reject_ratio, systemic_reject_min_rows=family.systemic_reject_min_rows,
    )  # fmt: skip


def check_mappings(family: Family) -> None:
    """Each object's mapping maps that object (raises at DAG load, naming the file)."""
    for o in family.objects:
        mapping = cached_mapping(o.mapping_name)
        if mapping.object != o.name:
            raise ValueError(f"family {family.family}: mapping {o.mapping_name} maps {mapping.object}, not {o.name}")
