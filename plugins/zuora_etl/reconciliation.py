"""Reconciliation: Zuora and a family's target compared id by id over a period, streaming.

**Which records.** Those whose `updatedDate` falls in the period `[lo, hi)` on each side (Zuora's
`updatedDate`, the target's `updated_date`). updatedDate rather than createdDate: it is the column
the contract guarantees in every target table (there is no created_date there by contract), it is
what the sync reads by, so the period holds exactly what the syncs of that period had to deliver,
and an old record changed in the period is checked (createdDate would never look at it again).
A record present on one side of the period only is then looked up by id on the other side, so a
record that moved out of the period on one side (the target lagging, or Zuora changing it after
the period) is told apart from one that is missing or gone.

**Zuora's side** is read with Object Query, only `id`, `updatedDate`, the compared fields and the
fields of the family's selection (`fields[]=`), `pageSize=99`, under the family's selection
(`filters` and `deliver_if` as `filter[]`) and the period window. Not Data Query: its exports are
asynchronous jobs, a few per tenant at once, and Zuora advises against them for extracting data
(the sizing DAG uses them for counts only). Items read by their parents (`parent:` in the family,
the items of Posted invoices) are compared through their parents: the items of the parents seen in
the period on either side, read `<key>.IN:[40 parents]` from Zuora and `<column> IN (...)` from the
target, chunk by chunk.

**Streaming.** Zuora's pages are staged as Parquet runs sorted by id (`PART_ROWS` each) and read
back merged (heapq) in id order one batch per run at a time; the target is read ordered by key in
keyset chunks; a merge join walks both. Memory holds a batch per run and a chunk of the target,
whatever the period's size.

**Kinds** (see `classify`): `missing` (in Zuora under the selection, not in the target), `extra` (in
the target, gone from Zuora or outside the family's selection: flagged, never deleted), `stale` (the
target's updated_date is older than Zuora's), `mismatch` (same updated_date, but a compared field
differs: the mapping's status and decimal/number columns, which Zuora changes without a new
updatedDate, like balances).
"""

from __future__ import annotations

import heapq
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TypedDict

import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from airflow.sdk import ObjectStoragePath

from . import settings
from .catalog import ZuoraObject, get_object
from .conditions import Condition, parse_all
from .families import Family, FamilyObject
from .hooks.zuora import ZuoraHook
from .manifests import ObjectPlan, RunPlan
from .mapping import Column, Mapping, cached_mapping
from .pipeline import IN_CHUNK, read_ids, stage_ids
from .reconciliation_store import DiffRow
from .replay import replay_parents
from .sinks.base import DELETED_COLUMN, Sink
from .sinks.sql import KEY_CHUNK
from .staging import PartWriter, as_text, write_table
from .state import DELIVERED, ledger
from .windows import parse_instant, zuora_instant

log = logging.getLogger(__name__)

# Object Query's largest page: the fewest calls for a period.
PAGE_SIZE = 99
# Page order (the comparison sorts locally, so order is about speed and stable cursors): a period is
# read along updatedDate, the index its window filters on; records asked for by id or by parent id
# in id order, which Zuora's cursor keeps stable while records change and which an id or parent
# filter serves without sorting on updatedDate (15 times faster on the emulator's medium tenant).
BY_UPDATED, BY_ID = "updatedDate.ASC", "id.ASC"
# Rows per Parquet batch read back from each sorted run during the merge: memory is this times the
# number of runs (a million records make 50 runs of 20,000: 50 x 2,000 rows), not the period's size.
MERGE_BATCH = 2_000
# Differences of one kind listed in the logs per object; the rest are in the tables and the report.
LOG_SAMPLES = 5
NUMERIC_TYPES = ("decimal", "number", "integer")
# Compared values are normalised to this many decimals: the SQL sink stores decimals as NUMERIC(18, 6).
QUANTUM = Decimal("0.000001")


# ---------------------------------------------------------------- plain values and pure rules


@dataclass(frozen=True)
class Side:
    """One record on one side: its id, updatedDate (UTC `YYYY-MM-DDTHH:MM:SS`), the compared
    values (normalised text), the parent it names (items) and, in the target, when reconciliation
    marked it deleted."""

    id: str
    updated: str | None
    values: tuple[str | None, ...] = ()
    parent: str | None = None
    deleted: str | None = None


@dataclass(frozen=True)
class Diff:
    id: str
    kind: str  # missing, extra, stale, mismatch
    detail: str
    since: str | None = None  # extra: when Zuora stopped having it in scope, when known (its updatedDate)
    revive: bool = False  # missing because the target marks it deleted: a repair clears the mark


def norm_instant(value: object) -> str | None:
    """An instant as UTC `YYYY-MM-DDTHH:MM:SS` (Zuora's one-second resolution); a naive datetime is UTC."""
    if value is None or value != value:
        return None
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    if isinstance(value, (datetime, date, str)):
        return parse_instant(value).strftime("%Y-%m-%dT%H:%M:%S")
    return str(value)


def norm_value(value: object, kind: str) -> str | None:
    """A compared value as text both sides agree on: numbers to six decimals without trailing
    zeros (`12345.67` whether Zuora says 12345.67 or the database NUMERIC 12345.670000)."""
    if value is None or value != value:
        return None
    if kind in NUMERIC_TYPES and not isinstance(value, bool):
        try:
            number = Decimal(str(value)).quantize(QUANTUM).normalize()
        except (InvalidOperation, ValueError):
            return str(value)
        return "0" if number.is_zero() else format(number, "f")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def dedupe(records: Iterable[Side]) -> Iterator[Side]:
    """One record per id from an id-ordered stream: the newest (a record changed while Zuora was
    paged arrives twice)."""
    held: Side | None = None
    for rec in records:
        if held is not None and rec.id == held.id:
            if (rec.updated or "") >= (held.updated or ""):
                held = rec
            continue
        if held is not None:
            yield held
        held = rec
    if held is not None:
        yield held


def merge_join(zuora: Iterable[Side], target: Iterable[Side]) -> Iterator[tuple[Side | None, Side | None]]:
    """Pairs (Zuora's, the target's) by id from two id-ordered streams; None where a side lacks it.
    Raises ValueError if a stream is out of order (a wrong join would report nonsense)."""
    zs, ts = iter(zuora), iter(target)
    z, t = next(zs, None), next(ts, None)
    last_z = last_t = None
    while z is not None or t is not None:
        for rec, last, name in ((z, last_z, "Zuora"), (t, last_t, "target")):
            if rec is not None and last is not None and rec.id <= last:
                raise ValueError(f"{name} side not in id order: {rec.id} after {last}")
        if t is None or (z is not None and z.id < t.id):
            yield z, None
            last_z, z = z.id, next(zs, None)
        elif z is None or t.id < z.id:
            yield None, t
            last_t, t = t.id, next(ts, None)
        else:
            yield z, t
            last_z, last_t = z.id, t.id
            z, t = next(zs, None), next(ts, None)


def classify(z: Side, t: Side, fields: Sequence[str]) -> Diff | None:
    """The difference between Zuora's record and the target's row of one id, or None."""
    if t.deleted:
        return Diff(z.id, "missing", f"in Zuora (updated {z.updated}); the target marks it deleted since {t.deleted}",
                    revive=True)  # fmt: skip
    if t.updated is None or (z.updated is not None and t.updated < z.updated):
        return Diff(z.id, "stale", f"target updated_date {t.updated}, Zuora's updatedDate {z.updated}")
    if z.updated is not None and t.updated > z.updated:
        return Diff(z.id, "mismatch", f"target updated_date {t.updated} is newer than Zuora's {z.updated}")
    pairs = zip(fields, t.values, z.values, strict=True)
    changed = [f"{f}: target {tv}, Zuora {zv}" for f, tv, zv in pairs if tv != zv]
    if changed:
        return Diff(z.id, "mismatch", "; ".join(changed))
    return None


def resolve_zuora_only(z: Side, t: Side | None, fields: Sequence[str]) -> Diff | None:
    """A record Zuora has in the period that the target's period lacks: missing, or the target's
    row found by id (outside the period) compared as usual."""
    if t is None:
        return Diff(z.id, "missing", f"in Zuora (updated {z.updated}), not in the target")
    return classify(z, t, fields)


def resolve_target_only(t: Side, z: Side | None, out_of_selection: str | None, fields: Sequence[str]) -> Diff | None:
    """A target row of the period that Zuora's period lacks, with Zuora's record found by id
    (None: gone) and why it fails the family's selection (None: it passes)."""
    if t.deleted:
        return None  # flagged by an earlier reconciliation
    if z is None:
        return Diff(t.id, "extra", "gone from Zuora")
    if out_of_selection:
        return Diff(t.id, "extra", f"no longer in the family's selection: {out_of_selection}", since=z.updated)
    return classify(z, t, fields)


def selection_failure(record: dict, conditions: Sequence[Condition]) -> str | None:
    """Why a raw Zuora record fails the family's selection (`status is Canceled, not
    status.EQ:Posted`), or None when it passes."""
    low = {k.lower(): v for k, v in record.items()}
    for c in conditions:
        value = as_text(low.get(c.field.lower()))
        if not c.test(value):
            return f"{c.field} is {value}, not {c.field}.{c.op}:{c.value}"
    return None


def period_of(params: dict, interval: tuple[object, object], now: datetime) -> tuple[datetime, datetime]:
    """The period `[lo, hi)` in UTC: the params (`period_end` a bare date means through that day),
    else the run's data interval (a scheduled @monthly run: the month before), else the previous
    calendar month. Raises ValueError naming the fix."""
    start, end = params.get("period_start"), params.get("period_end")

    def day_after(text: str) -> datetime:
        value = parse_instant(text)
        return value + timedelta(days=1) if len(text.strip()) == 10 else value

    if start or end:
        lo = parse_instant(start) if start else parse_instant(str(end)[:7] + "-01")
        hi = day_after(str(end)) if end else now
    elif interval[0] and interval[1] and parse_instant(interval[0]) < parse_instant(interval[1]):  # type: ignore[arg-type]
        lo, hi = parse_instant(interval[0]), parse_instant(interval[1])  # type: ignore[arg-type]
    else:
        first = now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        hi, lo = first, (first - timedelta(days=1)).replace(day=1)
    if lo >= hi:
        raise ValueError(f"period_start {lo.date()} is not before period_end {hi.date()}: give an earlier start")
    return lo, hi


# ---------------------------------------------------------------- what one object compares


@dataclass(frozen=True)
class ObjectSpec:
    """One object of one family as reconciliation sees it."""

    family: Family
    obj: FamilyObject
    mapping: Mapping
    columns: tuple[tuple[str, str, Column], ...]  # (target column, Zuora field, mapping column) compared

    @property
    def zuora(self) -> ZuoraObject:
        return get_object(self.obj.name)

    @property
    def conditions(self) -> list[Condition]:
        return parse_all(self.obj.selection)

    @property
    def fields(self) -> list[str]:
        return [c for c, _, _ in self.columns]

    @property
    def parent_column(self) -> str | None:
        """The target column naming the parent (items compared through their parents)."""
        if not self.obj.parent:
            return None
        key = self.obj.parent.key.lower()
        return next((n for n, c in self.mapping.columns.items() if (c.source or "").lower() == key), None)

    def zuora_fields(self) -> list[str]:
        extra = [self.obj.parent.key] if self.obj.parent else []
        return list(dict.fromkeys(["id", "updatedDate", *(s for _, s, _ in self.columns),
                                   *(c.field for c in self.conditions), *extra]))  # fmt: skip

    def target_columns(self) -> list[str]:
        return [*self.fields, *([self.parent_column] if self.parent_column else [])]


def compared_columns(mapping: Mapping) -> tuple[tuple[str, str, Column], ...]:
    """The fields compared when updatedDate agrees: status and the amount-like columns (decimal or
    number): what Zuora changes without a new updatedDate (balances) and what finance checks."""
    out = []
    for name, col in mapping.columns.items():
        if not col.source or name in (mapping.key, "updated_date"):
            continue
        if col.type in ("decimal", "number") or col.source.lower() == "status":
            out.append((name, col.source, col))
    return tuple(out)


def object_spec(family: Family, name: str) -> ObjectSpec:
    o = family.get(name)
    mapping = cached_mapping(o.mapping_name)
    return ObjectSpec(family, o, mapping, compared_columns(mapping))


def zuora_side(record: dict, spec: ObjectSpec) -> Side:
    low = {k.lower(): v for k, v in record.items()}
    values = []
    for _, source, col in spec.columns:
        raw = low.get(source.lower())
        if col.values and raw is not None:
            raw = col.values.get(as_text(raw), raw)  # type: ignore[arg-type]
        values.append(norm_value(raw, col.type))
    parent = low.get(spec.obj.parent.key.lower()) if spec.obj.parent else None
    return Side(str(record["id"]), norm_instant(low.get("updateddate")), tuple(values), parent)


def target_side(row: dict, spec: ObjectSpec) -> Side:
    values = tuple(norm_value(row.get(name), col.type) for name, _, col in spec.columns)
    parent = row.get(spec.parent_column) if spec.parent_column else None
    return Side(str(row[spec.mapping.key]), norm_instant(row.get("updated_date")), values, parent,
                norm_instant(row.get(DELETED_COLUMN)))  # fmt: skip


# ---------------------------------------------------------------- staging sorted runs


def _side_record(s: Side, width: int) -> dict:
    return {"id": s.id, "updated": s.updated, "parent": s.parent, **{f"v{i}": s.values[i] for i in range(width)}}


class SortedRuns:
    """Records staged as Parquet runs of at most `PART_ROWS`, each sorted by id."""

    def __init__(self, directory: ObjectStoragePath, prefix: str, width: int) -> None:
        self.directory, self.prefix, self.width = directory, prefix, width
        self.buffer: list[Side] = []
        self.parts: list[str] = []
        self.rows = 0

    def add(self, records: Iterable[Side]) -> None:
        for rec in records:
            self.buffer.append(rec)
            if len(self.buffer) >= settings.PART_ROWS:
                self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        self.buffer.sort(key=lambda s: s.id)
        names = ["id", "updated", "parent", *(f"v{i}" for i in range(self.width))]
        rows = [_side_record(s, self.width) for s in self.buffer]
        table = pa.table({n: pa.array([r[n] for r in rows], type=pa.string()) for n in names})
        path = self.directory / f"{self.prefix}-{len(self.parts):05d}.parquet"
        write_table(path, table)
        self.parts.append(str(path))
        self.rows += len(self.buffer)
        self.buffer = []


def _read_run(uri: str, width: int) -> Iterator[Side]:
    with ObjectStoragePath(uri).open("rb") as fh:
        for batch in pq.ParquetFile(fh).iter_batches(batch_size=MERGE_BATCH):
            for r in batch.to_pylist():
                yield Side(r["id"], r["updated"], tuple(r[f"v{i}"] for i in range(width)), r["parent"])


def read_sorted(parts: Sequence[str], width: int) -> Iterator[Side]:
    """Every staged run merged in id order, duplicates reduced to the newest."""
    return dedupe(heapq.merge(*(_read_run(p, width) for p in parts), key=lambda s: s.id))


# ---------------------------------------------------------------- reading both sides


class ObjectReconciliation(TypedDict):
    """What one object's comparison returns through XCom: counts and staged id parts only."""

    family: str
    object: str
    zuora_count: int
    target_count: int
    missing: int
    extra: int
    stale: int
    mismatched: int
    resync_parts: list[str]  # ids to read again (missing, stale, mismatch), column `revive`
    extra_parts: list[str]  # ids to mark deleted, column `since`
    seen_parts: list[str]  # (parents) every id of the period on either side, `in_zuora`: for the items
    api_calls: int
    seconds: float


def _zuora_pages(hook: ZuoraHook, spec: ObjectSpec, filters: list[str], sort: str = BY_ID) -> Iterator[list[dict]]:
    params = [("pageSize", str(PAGE_SIZE)), ("sort[]", sort), ("fields[]", ",".join(spec.zuora_fields())),
              *[("filter[]", f) for f in filters]]  # fmt: skip
    yield from hook.paginate(spec.zuora.endpoint, params, require=("id", "updatedDate"))


def zuora_by_id(hook: ZuoraHook, spec: ObjectSpec, ids: Sequence[str]) -> dict[str, dict]:
    """Zuora's records of `ids` whatever the family's selection (raw records, by id)."""
    found: dict[str, dict] = {}
    for start in range(0, len(ids), IN_CHUNK):
        chunk = ",".join(ids[start : start + IN_CHUNK])
        for page in _zuora_pages(hook, spec, [f"id.IN:[{chunk}]"]):
            found.update((str(r["id"]), r) for r in page)
    return found


class Comparer:
    """Compares one object of one family and streams its differences to `on_diff`."""

    def __init__(self, hook: ZuoraHook, sink: Sink, spec: ObjectSpec, directory: ObjectStoragePath,
                 on_diff: Callable[[Iterable[DiffRow]], object]) -> None:  # fmt: skip
        self.hook, self.sink, self.spec, self.directory, self.on_diff = hook, sink, spec, directory, on_diff
        self.counts = {"zuora": 0, "target": 0, "missing": 0, "extra": 0, "stale": 0, "mismatch": 0}
        self.resync = PartWriter(directory, "resync", ["id", "revive"])
        self.extras = PartWriter(directory, "extra", ["id", "since"])
        self.samples: dict[str, list[Diff]] = {}
        self.seen: PartWriter | None = None  # parents: every id of the period, whether Zuora has it in scope

    def emit(self, diffs: Iterable[Diff | None]) -> None:
        rows: list[DiffRow] = []
        for d in diffs:
            if d is None:
                continue
            self.counts[d.kind] += 1
            bucket = self.samples.setdefault(d.kind, [])
            if len(bucket) < LOG_SAMPLES:
                bucket.append(d)
            if d.kind == "extra":
                self.extras.add([{"id": d.id, "since": d.since}])
            else:
                self.resync.add([{"id": d.id, "revive": "1" if d.revive else None}])
            rows.append({"family": self.spec.family.family, "object": self.spec.obj.name, "id": d.id,
                         "kind": d.kind, "detail": d.detail})  # fmt: skip
        if rows:
            self.on_diff(rows)

    def _target_stream(self, **where) -> Iterator[Side]:
        for chunk in self.sink.iter_rows(self.spec.mapping, self.spec.target_columns(), **where):
            for row in chunk:
                yield target_side(row, self.spec)

    # ---- objects read by updatedDate: the period on both sides
    def compare_period(self, lo: datetime, hi: datetime, seen: PartWriter | None) -> None:
        spec = self.spec
        window = [f"updatedDate.GE:{zuora_instant(lo)}", f"updatedDate.LT:{zuora_instant(hi)}"]
        runs = SortedRuns(self.directory, "zuora", len(spec.columns))
        self.seen = seen
        for page in _zuora_pages(self.hook, spec, [*window, *spec.obj.selection], BY_UPDATED):
            runs.add(zuora_side(r, spec) for r in page)
        runs.flush()
        naive = {"lo": lo.astimezone(UTC).replace(tzinfo=None), "hi": hi.astimezone(UTC).replace(tzinfo=None)}
        zuora_only: list[Side] = []
        target_only: list[Side] = []
        for z, t in merge_join(read_sorted(runs.parts, len(spec.columns)), self._target_stream(**naive)):
            self.counts["zuora"] += z is not None
            self.counts["target"] += t is not None and not t.deleted
            if seen is not None and z is not None:
                seen.add([{"id": z.id, "in_zuora": "1"}])
            if z is not None and t is not None:
                self.emit([classify(z, t, spec.fields)])
            elif z is not None:
                zuora_only.append(z)
                if len(zuora_only) >= KEY_CHUNK:
                    self._resolve_zuora_only(zuora_only)
                    zuora_only = []
            elif t is not None and not t.deleted:
                target_only.append(t)
                if len(target_only) >= IN_CHUNK:
                    self._resolve_target_only(target_only)
                    target_only = []
        self._resolve_zuora_only(zuora_only)
        self._resolve_target_only(target_only)

    def _resolve_zuora_only(self, zs: list[Side]) -> None:
        if not zs:
            return
        rows = self.sink.rows_by_key(self.spec.mapping, self.spec.target_columns(), [z.id for z in zs])
        found = {k: target_side(r, self.spec) for k, r in rows.items()}
        self.emit(resolve_zuora_only(z, found.get(z.id), self.spec.fields) for z in zs)

    def _resolve_target_only(self, ts: list[Side]) -> None:
        if not ts:
            return
        records = zuora_by_id(self.hook, self.spec, [t.id for t in ts])
        conditions = self.spec.conditions
        out = []
        for t in ts:
            rec = records.get(t.id)
            z = zuora_side(rec, self.spec) if rec else None
            why = selection_failure(rec, conditions) if rec else None
            out.append(resolve_target_only(t, z, why, self.spec.fields))
            if self.seen is not None:  # its items are Zuora's only while it is in the selection
                self.seen.add([{"id": t.id, "in_zuora": "1" if rec and not why else None}])
        self.emit(out)

    # ---- items read by their parents: the items of the parents of the period, chunk by chunk
    def compare_children(self, parent_seen: Sequence[str]) -> None:
        spec = self.spec
        link, column = spec.obj.parent, spec.parent_column
        if link is None or column is None:
            raise ValueError(f"{spec.obj.name}: its mapping has no column for {link.key if link else 'its parent'}")
        chunk: list[tuple[str, bool]] = []
        for parent in _read_seen(parent_seen):
            chunk.append(parent)
            if len(chunk) >= IN_CHUNK:
                self._children_of(chunk)
                chunk = []
        self._children_of(chunk)

    def _children_of(self, parents: list[tuple[str, bool]]) -> None:
        if not parents:
            return
        spec = self.spec
        link = spec.obj.parent
        assert link is not None
        in_scope = [pid for pid, inz in parents if inz]
        zs: list[Side] = []
        if in_scope:
            for page in _zuora_pages(self.hook, spec, [f"{link.key}.IN:[{','.join(in_scope)}]", *spec.obj.selection]):
                zs.extend(zuora_side(r, spec) for r in page)
        ts = list(self._target_stream(parent=(spec.parent_column, [pid for pid, _ in parents])))
        scope = set(in_scope)
        out: list[Diff | None] = []
        for z, t in merge_join(dedupe(sorted(zs, key=lambda s: s.id)), ts):
            self.counts["zuora"] += z is not None
            self.counts["target"] += t is not None and not t.deleted
            if z is not None and t is not None:
                out.append(classify(z, t, spec.fields))
            elif z is not None:
                out.append(resolve_zuora_only(z, None, spec.fields))
            elif t is not None and not t.deleted:
                why = (
                    "gone from Zuora"
                    if t.parent in scope
                    else (f"its {link.object} {t.parent} is gone from Zuora or outside the family's selection")
                )
                out.append(Diff(t.id, "extra", why))
        self.emit(out)

    def result(self, started: float, seen: PartWriter | None) -> ObjectReconciliation:
        for writer in (self.resync, self.extras, *([seen] if seen else [])):
            writer.flush()
        for kind, diffs in self.samples.items():
            log.warning("%s.%s: %d %s, e.g. %s", self.spec.family.family, self.spec.obj.name, self.counts[kind], kind,
                        "; ".join(f"{d.id} ({d.detail})" for d in diffs))  # fmt: skip
        c = self.counts
        return {"family": self.spec.family.family, "object": self.spec.obj.name, "zuora_count": c["zuora"],
                "target_count": c["target"], "missing": c["missing"], "extra": c["extra"], "stale": c["stale"],
                "mismatched": c["mismatch"], "resync_parts": self.resync.parts, "extra_parts": self.extras.parts,
                "seen_parts": seen.parts if seen else [], "api_calls": self.hook.api_calls,
                "seconds": round(time.monotonic() - started, 3)}  # fmt: skip


def _read_seen(parts: Sequence[str]) -> Iterator[tuple[str, bool]]:
    """(id, in Zuora's selection) of the parents staged by their comparison (each chunk of items
    is compared on its own, so their order does not matter)."""
    for part in parts:
        with ObjectStoragePath(part).open("rb") as fh:
            for batch in pq.ParquetFile(fh).iter_batches(batch_size=MERGE_BATCH, columns=["id", "in_zuora"]):
                for r in batch.to_pylist():
                    yield r["id"], bool(r["in_zuora"])


def has_children(family: Family, name: str) -> bool:
    return any(o.parent and o.parent.object == name for o in family.objects)


def compare_object(
    hook: ZuoraHook,
    sink: Sink,
    family: Family,
    name: str,
    period: tuple[datetime, datetime],
    directory: ObjectStoragePath,
    on_diff: Callable[[Iterable[DiffRow]], object],
    parent_seen: Sequence[str] = (),
) -> ObjectReconciliation:
    """Compare one object of `family` for the period; differences stream to `on_diff`."""
    started = time.monotonic()
    spec = object_spec(family, name)
    comparer = Comparer(hook, sink, spec, directory, on_diff)
    seen = PartWriter(directory, "seen", ["id", "in_zuora"]) if has_children(family, name) else None
    if spec.obj.parent:
        comparer.compare_children(parent_seen)
    else:
        comparer.compare_period(period[0], period[1], seen)
    return comparer.result(started, seen)


# ---------------------------------------------------------------- repair


def _lookup_parents(hook: ZuoraHook, obj: str, key: str, ids: list[str]) -> dict[str, str]:
    """id -> the value of `key` (the parent's id) of `obj`'s records."""
    found: dict[str, str] = {}
    endpoint = get_object(obj).endpoint
    for start in range(0, len(ids), IN_CHUNK):
        params = [("pageSize", str(PAGE_SIZE)), ("sort[]", BY_ID), ("fields[]", ",".join(sorted({"id", key}))),
                  ("filter[]", f"id.IN:[{','.join(ids[start : start + IN_CHUNK])}]")]  # fmt: skip
        for page in hook.paginate(endpoint, params):
            low = [{k.lower(): v for k, v in r.items()} for r in page]
            found.update((str(r["id"]), str(r[key.lower()])) for r in low if r.get(key.lower()))
    return found


def repair_plan(
    family: Family,
    results: dict[str, ObjectReconciliation | None],
    hook: ZuoraHook,
    run_id: str,
    staging_dir: ObjectStoragePath,
) -> RunPlan | None:
    """The replay plan that re-syncs the family's missing, stale and mismatched records: each
    record's id climbed to the object the replay reads by id (an item to its invoice, a tier to its
    subscription: the replay's chains bring the parts with the whole), staged, `force` on. None
    when nothing needs reading again."""
    parents = replay_parents(family)
    wanted: dict[str, list[str]] = {}
    for o in family.objects:
        result = results.get(o.name)
        ids = list(dict.fromkeys(read_ids(result["resync_parts"]))) if result else []
        obj = o.name
        while obj in parents and ids:
            parent, key = parents[obj]
            ids = list(dict.fromkeys(_lookup_parents(hook, obj, key, ids).values()))
            obj = parent
        if ids:
            wanted[obj] = list(dict.fromkeys([*wanted.get(obj, []), *ids]))
    if not wanted:
        return None
    objects: dict[str, ObjectPlan] = {}
    for o in family.objects:
        parts = stage_ids(staging_dir / o.name, "repair-ids", wanted[o.name]) if o.name in wanted else []
        objects[o.name] = {"windows": [], "watermark": None, "by_parent": parents.get(o.name, (None,))[0],
                           "id_parts": parts}  # fmt: skip
    return {"family": family.family, "mode": "replay", "run_id": run_id, "staging_dir": str(staging_dir),
            "objects": objects, "force": True, "requested": sum(len(v) for v in wanted.values())}  # fmt: skip


def repaired_ids(result: ObjectReconciliation, delivered: Callable[[list[str]], set[str]]) -> set[str]:
    """Of the ids to re-sync, those the repair delivered (`delivered(ids)`: which of them this
    run's ledger holds as loaded or unchanged), asked in chunks."""
    wanted = list(dict.fromkeys(read_ids(result["resync_parts"])))
    fixed: set[str] = set()
    for start in range(0, len(wanted), KEY_CHUNK):
        fixed |= delivered(wanted[start : start + KEY_CHUNK])
    return fixed


def ledger_delivered(engine: sa.Engine, run_id: str, family: str, obj: str, ids: list[str]) -> set[str]:
    """Which of `ids` this run's loads ledgered as delivered (the target holds that version)."""
    query = sa.select(ledger.c.record_id).where(
        (ledger.c.run_id == run_id) & (ledger.c.family == family) & (ledger.c.object == obj)
        & ledger.c.outcome.in_(DELIVERED) & ledger.c.record_id.in_(ids)
    )  # fmt: skip
    with engine.connect() as conn:
        return set(conn.execute(query).scalars())


def extra_marks(result: ObjectReconciliation, now: datetime) -> dict[str, datetime]:
    """id -> when Zuora stopped having it in scope: its updatedDate when Zuora still has it outside
    the selection, else `now` (when it was found gone)."""
    marks: dict[str, datetime] = {}
    for part in result["extra_parts"]:
        with ObjectStoragePath(part).open("rb") as fh:
            for r in pq.read_table(fh).to_pylist():
                marks[r["id"]] = parse_instant(r["since"]) if r["since"] else now
    return marks


def revived_ids(result: ObjectReconciliation) -> list[str]:
    """Ids the target marks deleted that Zuora has again: the repair clears their mark."""
    out: list[str] = []
    for part in result["resync_parts"]:
        with ObjectStoragePath(part).open("rb") as fh:
            out += [r["id"] for r in pq.read_table(fh).to_pylist() if r["revive"]]
    return out
