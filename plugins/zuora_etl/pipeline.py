"""The one extract / transform / load / mark path, shared by sync, backfill, replay and repair.

Each step reads and writes staging and returns a small manifest (a dict fit for XCom).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from airflow.sdk import ObjectStoragePath

from .catalog import ZuoraObject
from .conditions import Condition, passing
from .decisions import decide
from .hooks.zuora import ACTION_BATCH, ZuoraApiError, ZuoraHook
from .logfmt import logfmt
from .manifests import ExtractResult, HeldParents, LoadResult, TransformResult, merge, newer
from .mapping import CARRY_PREFIX, Mapping, apply_mapping
from .settings import DRY_RUN_SAMPLES
from .sinks import Sink
from .sinks.base import ACTION_COLUMN, LAST_DIGEST_COLUMN, PARENT_COLUMN
from .staging import FrameWriter, PartWriter, part_rows_for, read_frame, read_frames, write_frame
from .state import CANCELED, PENDING, StateStore
from .windows import Window, parse_instant

log = logging.getLogger(__name__)

# Records the volume probe reads: one page, Object Query's largest.
PROBE_PAGE = 99
# Ids per `id.IN:[...]` request: 40 ids of 32 characters keep the URL near 1.5 kB, far from any
# proxy's limit, while a page of 99 still fits the answer of 40 parents' items in most tenants.
IN_CHUNK = 40


def extraction_fields(mapping: Mapping, extra: list[str] = ()) -> list[str]:
    return sorted({"id", "updatedDate", *mapping.source_fields(), *extra})


def _stream(
    hook: ZuoraHook, obj: ZuoraObject, fields: list[str], filters: list[str], writer: PartWriter, read: str
) -> dict:
    """Every page of one query, oldest first, into the writer's parts; memory holds one part at most.
    Each page is logged at INFO with what `read` it belongs to (a window, a chunk of ids), its
    records, and Zuora's request id and our track id."""
    params = [("sort[]", "updatedDate.ASC"), ("fields[]", ",".join(fields))] + [("filter[]", f) for f in filters]
    pages, max_updated = 0, None
    for page in hook.paginate(obj.endpoint, params, require=("id", "updatedDate")):
        pages += 1
        writer.add(page)
        for rec in page[-1:]:  # sorted ascending: the page's last record is its newest
            max_updated = newer(max_updated, rec.get("updatedDate"))
        call = hook.last_call
        log.info(
            logfmt(
                "page",
                object=obj.name,
                read=read,
                page=pages,
                records=len(page),
                total=writer.rows + writer.buffered,
                newest=max_updated,
                request_id=call.request_id,
                track_id=call.track_id,
                ms=call.ms,
            )
        )
    return {"pages": pages, "max_updated": max_updated}


def extract_pages(
    hook: ZuoraHook,
    obj: ZuoraObject,
    fields: list[str],
    filters: list[str],
    directory: ObjectStoragePath,
    prefix: str,
    read: str = "query",
    part_rows: int = 0,
) -> dict:
    """One query (a window slice and the family's filters) into Parquet parts; `read` names it in
    the page log lines; `part_rows`: see `staging.PartWriter`."""
    writer = PartWriter(directory, prefix, fields, part_rows)
    streamed = _stream(hook, obj, fields, filters, writer, read)
    writer.flush()
    return {"parts": writer.parts, "rows": writer.rows, **streamed}


def probe_volume(
    hook: ZuoraHook, obj: ZuoraObject, filters: list[str], window: Window
) -> tuple[datetime | None, float | None]:
    """What one call tells of a window's volume (Object Query has no count): its oldest page gives
    the first record's updatedDate and, when the window holds less than a page, the exact rate of
    records per second. With more, the rate stays unknown (None): the newest records' rate is no
    guide, a bill run stamps thousands in one second."""
    params = [("pageSize", str(PROBE_PAGE)), ("sort[]", "updatedDate.ASC"), ("fields[]", "id,updatedDate"),
              *[("filter[]", f) for f in [*window.filters(), *filters]]]  # fmt: skip
    oldest = next(iter(hook.paginate(obj.endpoint, params)), [])
    if not oldest:
        return None, 0.0
    first = parse_instant(oldest[0]["updatedDate"])
    if len(oldest) < PROBE_PAGE:
        return first, len(oldest) / max(1.0, (window.hi - first).total_seconds())
    return first, None


def stage_ids(directory: ObjectStoragePath, name: str, ids: Sequence[str]) -> list[str]:
    """Ids as one staged part (column `id`), for a next step to read by: XCom carries only its path."""
    if not ids:
        return []
    return [write_frame(directory / f"{name}.parquet", pd.DataFrame({"id": list(dict.fromkeys(ids))}))]


def _threads(hook: ZuoraHook, reads: int) -> int:
    """Threads for `reads` queries of one task: one for one (or none), else as many as the connection
    lets the process send at once (`max_in_flight`, read from the connection)."""
    if reads <= 1:
        return 1
    hook.get_conn()
    return min(reads, hook.max_in_flight)


def extract_windows(
    make_hook: Callable[[], ZuoraHook],
    obj: ZuoraObject,
    fields: list[str],
    filters: list[str],
    windows: list[Window],
    directory: ObjectStoragePath,
    prefix: str = "raw-s",
) -> dict:
    """Extract each window slice, several at once in threads (as many as the connection's
    `max_in_flight`; newest first, each thread taking the next window as it finishes one), sharing
    one hook: one token, one pool of connections, the process's
    concurrency gate. Part names carry `prefix` (mapped tasks put their map index in it, so no two
    tasks share a name)."""
    hook = make_hook()
    threads = _threads(hook, len(windows))
    part_rows = part_rows_for(threads)

    def one(i: int, window: Window) -> dict:
        lo = window.lo.isoformat() if window.lo else "beginning"
        read = f"window[{lo},{window.hi.isoformat()}) slice {i + 1}/{len(windows)}"
        scoped = [*window.filters(), *filters]
        return extract_pages(hook, obj, fields, scoped, directory, f"{prefix}{i:02d}", read, part_rows)

    if threads <= 1:
        reads = [one(i, w) for i, w in enumerate(windows)]
    else:
        newest_first = list(reversed(range(len(windows))))  # the largest, as a rule: started first
        with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="slices") as pool:
            reads = list(pool.map(lambda i: one(i, windows[i]), newest_first))[::-1]  # back in window order
    return {**merge(reads), "api_calls": hook.api_calls}


def extract_ids(
    make_hook: Callable[[], ZuoraHook],
    obj: ZuoraObject,
    key: str,
    ids: list[str],
    fields: list[str],
    filters: list[str],
    directory: ObjectStoragePath,
    prefix: str = "raw-ids",
) -> dict:
    """Extract the records whose `key` is one of `ids` (children of given parents, or replay), in
    chunks of IN_CHUNK ids read by as many threads as the connection lets one process send calls
    at once (`max_in_flight`). The threads share one hook (one token, one pool of connections,
    the process's concurrency gate); each writes its own parts."""
    unique = list(dict.fromkeys(i for i in ids if i))
    chunks = [unique[start : start + IN_CHUNK] for start in range(0, len(unique), IN_CHUNK)]
    hook = make_hook()
    workers = _threads(hook, len(chunks))

    def one(worker: int) -> dict:
        name = f"{prefix}-t{worker:02d}" if workers > 1 else prefix
        writer = PartWriter(directory, name, fields, part_rows_for(workers))
        pages, max_updated = 0, None
        for n in range(worker, len(chunks), workers):  # chunks dealt round-robin: equal shares
            chunk = chunks[n]
            lo = n * IN_CHUNK
            read = f"{key} in ids {lo + 1}-{lo + len(chunk)} of {len(unique)} (chunk {n + 1}/{len(chunks)})"
            streamed = _stream(hook, obj, fields, [f"{key}.IN:[{','.join(chunk)}]", *filters], writer, read)
            pages += streamed["pages"]
            max_updated = newer(max_updated, streamed["max_updated"])
        writer.flush()
        return {"parts": writer.parts, "rows": writer.rows, "pages": pages, "max_updated": max_updated}

    if workers == 1:
        result = one(0)
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"ids-{obj.name}") as pool:
            result = merge(list(pool.map(one, range(workers))))
    return {**result, "api_calls": hook.api_calls}


def read_ids(parts: Sequence[str], column: str = "id", conditions: Sequence[Condition] = ()) -> list[str]:
    """The ids of staged parts; with `conditions`, of the records passing them only."""
    ids: list[str] = []
    for part in parts:
        frame = read_frame(part)
        if conditions:
            frame = frame[passing(frame, conditions)]
        ids.extend(v for v in frame[column].tolist() if v)
    return ids


def transform(
    mapping: Mapping,
    manifest: ExtractResult,
    directory: ObjectStoragePath,
    carry: tuple[str, ...] = (),
    tag: str = "",
) -> TransformResult:
    """Apply the mapping part by part; write transformed parts (raw parts gathered up to
    `settings.PART_ROWS` rows each) and one quarantine part per raw part that has rejects, their
    names carrying `tag` (mapped tasks put their map index in it, so no two tasks share a name).
    Counts, per Zuora field, the records that failed it (`column_failures`, with a sample reason)."""
    started = time.monotonic()
    out: dict = {**manifest, "parts": [], "raw_parts": manifest["parts"], "quarantine_parts": [], "rows_in": 0,
           "rows_out": 0, "quarantined": 0, "column_failures": {}}  # fmt: skip
    failures: Counter[str] = Counter()
    samples: dict[str, str] = {}
    mapped = FrameWriter(directory, f"mapped-{tag}" if tag else "mapped")
    for i, frame in enumerate(read_frames(manifest["parts"])):
        good, bad = apply_mapping(mapping, frame, carry)
        out["rows_in"] += len(frame)
        mapped.add(good)
        out["rows_out"] += len(good)
        if len(bad):
            out["quarantine_parts"].append(write_frame(directory / f"quarantine-{tag}{i:05d}.parquet", bad))
            out["quarantined"] += len(bad)
            for columns, reason in zip(bad["columns"], bad["reason"], strict=True):
                for column in str(columns).split(","):
                    failures[column] += 1
                    samples.setdefault(column, reason)
    mapped.flush()
    out["parts"] = mapped.parts
    out["column_failures"] = {c: {"records": n, "sample": samples[c][:300]} for c, n in failures.most_common()}
    out["transform_seconds"] = round(time.monotonic() - started, 3)
    if out["quarantined"]:
        log.warning("%s: %d of %d records quarantined", mapping.object, out["quarantined"], out["rows_in"])
    return out  # type: ignore[return-value]


def systemic_failure(result: TransformResult, ratio: float, min_rows: int) -> str | None:
    """Why an object's records fail as a whole (one field failing at least `ratio` of them, and
    at least `min_rows`), or None when failures, if any, are record by record."""
    rows = result.get("rows_in", 0)
    for column, failed in result.get("column_failures", {}).items():
        if failed["records"] >= min_rows and failed["records"] >= ratio * rows:
            return (
                f"{failed['records']} of {rows} {result.get('object')} records fail on {column} "
                f"(e.g. {failed['sample']}): the mapping or Zuora's data changed; fix the mapping, then rerun. "
                "Nothing of this object was loaded and no watermark moved."
            )
    return None


def settle_pending(
    sink: Sink, mapping: Mapping, state: StateStore, family: str, alive: Callable[[str], bool] = lambda _: False
) -> int:
    """Ledger rows a dead worker left `pending`: `loaded` where the target holds that version (it
    committed before the worker died), else `aborted` (this or a later run loads it again). Rows of
    runs `alive` says are still running are left to them."""
    pending = state.pending(family, mapping.object, alive)
    if not pending:
        return 0
    held = sink.updated_dates(mapping, list({rid for _, rid, _ in pending}))
    committed = [seq for seq, rid, upd in pending if rid in held and (upd is None or held[rid] >= upd)]
    state.set_outcome(committed, "loaded")
    done = set(committed)
    state.set_outcome([seq for seq, _, _ in pending if seq not in done], "aborted")
    log.warning("%s: settled %d pending ledger rows of a worker that died (%d had committed)",
                mapping.object, len(pending), len(committed))  # fmt: skip
    return len(committed)


@dataclass
class Delivery:
    """What the load of one object needs beyond its rows: the family's scope conditions, the raw
    field carrying Zuora's transferred flag (objects the mark step flags), and the children a
    target nests in these records' documents (object -> (their transform result, their field
    naming this object))."""

    conditions: Sequence[Condition] = ()
    flag_field: str | None = None
    children: dict[str, tuple[TransformResult | None, str]] = field(default_factory=dict)


def load(
    sink: Sink,
    mapping: Mapping,
    manifest: TransformResult,
    state: StateStore,
    run_id: str,
    family: str,
    *,
    force: bool = False,
    held_parents: HeldParents | None = None,
    alive: Callable[[str], bool] = lambda _: False,
    delivery: Delivery | None = None,
) -> LoadResult:
    """Decide each record's action (decisions.py), deliver it; ledger every record; dead-letter
    what did not land.

    Records whose parent did not land (`held_parents`: the parent's failed ids and the carried
    field naming the parent) are held back with it, and so are records whose nested children were
    quarantined (a document never travels incomplete). Open dead letters of records that land now
    are resolved, and so are those Zuora no longer has (`gone_ids` of the extraction) or that left
    the family's scope. The ids the target accepted in the family's scope whose transferred flag is
    not set are staged (`accepted_parts`) for the mark step."""
    started = time.monotonic()
    obj, delivery = mapping.object, delivery or Delivery()
    sink.prepare(mapping)
    settle_pending(sink, mapping, state, family, alive)
    open_letters = set(state.open_dead_letter_ids(family, obj))
    children, incomplete = ({}, {}) if sink.nested(mapping) else _children(delivery)
    counts: Counter[str] = Counter()
    failed_ids: list[str] = []
    accepted: list[str] = []
    for frame in read_frames(manifest.get("quarantine_parts", [])):
        items = [(None if r != r else r, reason, payload) for r, reason, payload in
                 frame[["record_id", "reason", "payload"]].itertuples(index=False)]  # fmt: skip
        state.dead_letter(run_id, family, obj, "transform", items)
        state.record_outcomes(run_id, family, obj, "quarantined", [(r, None) for r, _, _ in items])
        failed_ids += [r for r, _, _ in items if r]
    for batch, frame in enumerate(read_frames(manifest["parts"]), start=1):
        batch_started = time.monotonic()
        frame = _hold_back(state, run_id, family, mapping, frame, held_parents, incomplete, counts, failed_ids)
        if _decides(sink, mapping, delivery):
            frame = _decide(state, run_id, family, mapping, frame, delivery, counts, open_letters)
        # Written ahead: a worker that dies after the target commits leaves these pending rows
        # behind, and the next load settles them against the target.
        state.record_outcomes(run_id, family, obj, PENDING, _versions(frame, mapping.key))
        outcome = sink.upsert(mapping, frame, force=force, children=children)
        rejected_ids = [k for k, _ in outcome.rejected]
        settled = {"unchanged": outcome.unchanged, "rejected": rejected_ids, CANCELED: outcome.canceled}
        state.settle(run_id, family, obj, settled, rest="loaded", digests=outcome.digests)
        if outcome.rejected:
            columns = [c for c in frame.columns if c != mapping.key and not c.startswith(CARRY_PREFIX)]
            raw = frame.set_index(mapping.key)[columns]
            letters = [
                (k, why, raw.loc[k].to_json(date_format="iso", force_ascii=False)) for k, why in outcome.rejected
            ]
            state.dead_letter(run_id, family, obj, "load", letters)
            failed_ids += rejected_ids
        if open_letters:
            landed = [k for k in (*outcome.written, *outcome.unchanged, *outcome.canceled) if k in open_letters]
            counts["resolved"] += state.resolve_dead_letters(family, obj, landed, "loaded")
        accepted += _to_flag(frame, mapping, delivery, {*outcome.written, *outcome.unchanged})
        counts.update(
            loaded=len(outcome.written),
            unchanged=len(outcome.unchanged),
            rejected=len(outcome.rejected),
            canceled=len(outcome.canceled),
        )
        log.info(
            logfmt(
                "batch",
                object=obj,
                run_id=run_id,
                batch=batch,
                rows=len(frame),
                loaded=len(outcome.written),
                unchanged=len(outcome.unchanged),
                refused=len(outcome.rejected),
                canceled=len(outcome.canceled),
                ms=round((time.monotonic() - batch_started) * 1000),
            )
        )
    gone = [i for i in manifest.get("gone_ids", []) if i in open_letters]
    counts["resolved"] += state.resolve_dead_letters(family, obj, gone, "gone") if gone else 0
    _log_load(obj, counts, held_parents, len(gone))
    accepted_parts = stage_ids(ObjectStoragePath(manifest["directory"]), "accepted-ids", accepted)
    return _load_result(manifest, counts, failed_ids, accepted_parts, time.monotonic() - started)


def _versions(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    """The batch's (record_id, updated_date), one row per record (its last version)."""
    versions = frame[[key, "updated_date"]].rename(columns={key: "record_id"})
    return versions.drop_duplicates("record_id", keep="last") if versions["record_id"].duplicated().any() else versions


def _load_result(
    manifest: TransformResult,
    counts: Counter[str],
    failed_ids: list[str],
    accepted_parts: list[str],
    seconds: float,
    dry_run: bool = False,
    differences: list | None = None,
) -> LoadResult:
    names = ("inserted", "updated", "unchanged", "rejected", "held", "canceled", "skipped", "resolved")
    out = {**manifest, **{n: counts[n] for n in names}, "dry_run": dry_run, "failed_ids": failed_ids}
    loaded = counts["inserted"] + counts["updated"] if dry_run else counts["loaded"]
    out.update(loaded=loaded, accepted_parts=accepted_parts, differences=differences or [])
    out["load_seconds"] = round(seconds, 3)
    return out  # type: ignore[return-value]


def _decides(sink: Sink, mapping: Mapping, delivery: Delivery) -> bool:
    """Whether each record's action is decided from the ledger: the family has a scope, or the
    target is an API (which cannot be asked what it holds) and this object travels on its own."""
    return bool(delivery.conditions) or (sink.needs_history and not sink.nested(mapping))


def _log_load(obj: str, counts: Counter[str], held_parents: HeldParents | None, gone: int) -> None:
    if counts["rejected"]:
        log.warning("%s: %d records refused by the target (see zuora_etl_dead_letters)", obj, counts["rejected"])
    if counts["held"]:
        parent = held_parents["object"] if held_parents else "parents or children"
        log.warning("%s: %d records held back with their %s that did not land", obj, counts["held"], parent)
    if counts["skipped"] or counts["canceled"]:
        log.info(
            "%s: %d records outside the family's scope skipped, %d canceled in the target",
            obj,
            counts["skipped"],
            counts["canceled"],
        )
    if counts["resolved"]:
        log.info("%s: %d dead letters resolved (%d gone from Zuora)", obj, counts["resolved"], gone)


def _hold_back(
    state: StateStore,
    run_id: str,
    family: str,
    mapping: Mapping,
    frame: pd.DataFrame,
    held_parents: HeldParents | None,
    incomplete: dict[str, str],
    counts: Counter[str],
    failed_ids: list[str],
) -> pd.DataFrame:
    """The part without the records held back: those whose parent did not land, and those a
    nested child of which was quarantined (`incomplete`: id -> why)."""
    waiting = frame.iloc[0:0]
    reasons: list[str] = []
    if held_parents and held_parents["ids"]:
        parent, key = held_parents["object"], held_parents["key"]
        waiting = frame[frame[CARRY_PREFIX + key].isin(set(held_parents["ids"]))]
        reasons = [f"held back: its {parent} {pid} did not land ({key})" for pid in waiting[CARRY_PREFIX + key]]
    if incomplete:
        more = frame[frame[mapping.key].isin(set(incomplete)) & ~frame.index.isin(waiting.index)]
        waiting = pd.concat([waiting, more])
        reasons += [incomplete[k] for k in more[mapping.key]]
    if len(waiting):
        _hold(state, run_id, family, mapping, waiting, reasons)
        failed_ids += list(waiting[mapping.key])
        counts["held"] += len(waiting)
        frame = frame.drop(waiting.index)
    return frame


def _decisions(state: StateStore, family: str, mapping: Mapping, frame: pd.DataFrame, delivery: Delivery):
    """The part's rows with each one's action (None: skip) and last digest (decisions.py)."""
    ids = frame[mapping.key].tolist()
    in_scope = passing(frame, delivery.conditions, CARRY_PREFIX).tolist()
    decided = decide(ids, in_scope, state.deliveries(family, mapping.object, ids))
    return frame.assign(**{ACTION_COLUMN: [a for a, _ in decided], LAST_DIGEST_COLUMN: [d for _, d in decided]})


def _decide(
    state: StateStore,
    run_id: str,
    family: str,
    mapping: Mapping,
    frame: pd.DataFrame,
    delivery: Delivery,
    counts: Counter[str],
    open_letters: set[str],
) -> pd.DataFrame:
    """The rows to deliver, with their actions; rows that never concerned the target are ledgered
    `skipped` and left out (their open dead letters resolved `skipped`)."""
    obj, frame = mapping.object, _decisions(state, family, mapping, frame, delivery)
    skipped = frame[frame[ACTION_COLUMN].isna()]
    if len(skipped):
        versions = zip(skipped[mapping.key], skipped["updated_date"], strict=True)
        state.record_outcomes(run_id, family, obj, "skipped", versions)
        out_of_scope = [k for k in skipped[mapping.key] if k in open_letters]
        counts["resolved"] += state.resolve_dead_letters(family, obj, out_of_scope, "skipped") if out_of_scope else 0
        counts["skipped"] += len(skipped)
    return frame[frame[ACTION_COLUMN].notna()]


def _to_flag(frame: pd.DataFrame, mapping: Mapping, delivery: Delivery, landed: set[str]) -> list[str]:
    """Of the rows the target accepted (written, or holding them already), those in the family's
    scope whose transferred flag Zuora does not show yet: never a cancel, never a refusal."""
    if not delivery.flag_field:
        return []
    flags = frame.get(CARRY_PREFIX + delivery.flag_field, pd.Series(None, index=frame.index))
    actions = frame.get(ACTION_COLUMN, pd.Series("update", index=frame.index))
    keep = frame[mapping.key].isin(landed) & (actions != "cancel") & (flags.astype(object) != "Yes")
    return frame.loc[keep, mapping.key].tolist()


def _children(delivery: Delivery) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """The nested children's mapped rows (object -> one frame, parent id carried), and the parents
    a quarantined child makes incomplete (parent id -> why)."""
    frames: dict[str, pd.DataFrame] = {}
    incomplete: dict[str, str] = {}
    for name, (result, key) in delivery.children.items():
        if result is None:
            continue
        parts = [f.assign(**{PARENT_COLUMN: f[CARRY_PREFIX + key]}) for f in read_frames(result.get("parts", []))]
        frames[name] = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
        for frame in read_frames(result.get("quarantine_parts", [])):
            for rid, payload in frame[["record_id", "payload"]].itertuples(index=False):
                parent = json.loads(payload).get(key) if isinstance(payload, str) else None
                if parent:
                    why = f"held back: its {name} {rid} was quarantined (a document never travels without its lines)"
                    incomplete.setdefault(parent, why)
    return frames, incomplete


def _hold(state: StateStore, run_id: str, family: str, mapping: Mapping, rows, reasons: list[str]) -> None:
    obj, keys = mapping.object, rows[mapping.key].tolist()
    state.dead_letter(run_id, family, obj, "held", [(rid, why, None) for rid, why in zip(keys, reasons, strict=True)])
    state.record_outcomes(run_id, family, obj, "held", zip(keys, rows["updated_date"], strict=True))


def preview(
    sink: Sink,
    mapping: Mapping,
    manifest: TransformResult,
    state: StateStore,
    family: str,
    *,
    force: bool = False,
    delivery: Delivery | None = None,
) -> LoadResult:
    """A dry run's load: what the target would gain, counted and sampled, writing nothing (no
    table, no ledger, no dead letter, no request)."""
    started = time.monotonic()
    delivery = delivery or Delivery()
    children = {} if sink.nested(mapping) else _children(delivery)[0]
    counts: Counter[str] = Counter()
    differences: list = []
    for frame in read_frames(manifest["parts"]):
        if _decides(sink, mapping, delivery):
            frame = _decisions(state, family, mapping, frame, delivery)
            counts["skipped"] += int(frame[ACTION_COLUMN].isna().sum())
            frame = frame[frame[ACTION_COLUMN].notna()]
        diff = sink.compare(mapping, frame, force=force, children=children)
        counts.update(inserted=len(diff.inserted), updated=len(diff.updated), unchanged=len(diff.unchanged))
        differences += diff.differences[: max(0, DRY_RUN_SAMPLES - len(differences))]
    log.info(
        "%s (dry run): %d would be inserted, %d updated, %d unchanged, %d skipped",
        mapping.object,
        counts["inserted"],
        counts["updated"],
        counts["unchanged"],
        counts["skipped"],
    )
    return _load_result(manifest, counts, [], [], time.monotonic() - started, dry_run=True, differences=differences)


def mark_transferred(
    hook: ZuoraHook,
    obj: ZuoraObject,
    ids: Sequence[str],
    on_flagged: Callable[[list[str]], None] = lambda _: None,
) -> tuple[list[str], list[tuple[str, str]]]:
    """Flag documents `TransferredToAccounting=Yes` in Zuora; returns (flagged, failures).

    `ids` are what the target accepted (the load's `accepted_parts`): never a refused, canceled or
    skipped document, never an item. `on_flagged` hears each batch Zuora accepted at once, so that
    a retried step skips them. Invoices, payments and refunds go 50 to a `POST /v1/action/update`;
    memos one `PUT` each."""
    todo = list(dict.fromkeys(ids))
    marked: list[str] = []
    failures: list[tuple[str, str]] = []
    if obj.action_type:
        for start in range(0, len(todo), ACTION_BATCH):
            batch = todo[start : start + ACTION_BATCH]
            answers = hook.action_update(obj.action_type, [{"Id": i, "TransferredToAccounting": "Yes"} for i in batch])
            done = []
            for doc_id, answer in zip(batch, answers, strict=True):
                if answer.get("Success"):
                    done.append(doc_id)
                else:
                    errors = answer.get("Errors") or [{}]
                    failures.append((doc_id, f"{errors[0].get('Code')}: {errors[0].get('Message')}"))
            _log_mark(obj, start // ACTION_BATCH + 1, len(batch), len(done), hook)
            on_flagged(done)
            marked += done
    elif obj.memo_path:
        for doc_id in todo:
            try:
                hook.update_memo(obj.memo_path, doc_id, {"transferredToAccounting": "Yes"})
            except ZuoraApiError as exc:
                if exc.retryable:
                    raise
                failures.append((doc_id, str(exc)))
                continue
            on_flagged([doc_id])
            marked.append(doc_id)
            _log_mark(obj, len(marked), 1, 1, hook)
    return marked, failures


def _log_mark(obj: ZuoraObject, batch: int, size: int, flagged: int, hook: ZuoraHook) -> None:
    call = hook.last_call
    log.info(
        logfmt(
            "mark batch",
            object=obj.name,
            batch=batch,
            documents=size,
            flagged=flagged,
            failed=size - flagged,
            request_id=call.request_id,
            track_id=call.track_id,
            ms=call.ms,
        )
    )


def flags_in_zuora(hook: ZuoraHook, obj: ZuoraObject, ids: Sequence[str]) -> dict[str, str | None]:
    """Each document's transferred flag as Zuora shows it now: a retried mark step asks, so that a
    batch flagged just before a crash is not flagged again."""
    found: dict[str, str | None] = {}
    unique = list(dict.fromkeys(ids))
    for start in range(0, len(unique), IN_CHUNK):
        chunk = ",".join(unique[start : start + IN_CHUNK])
        params = [("fields[]", "id,transferredToAccounting"), ("filter[]", f"id.IN:[{chunk}]")]
        for page in hook.paginate(obj.endpoint, params):
            found.update((r["id"], r.get("transferredToAccounting")) for r in page)
    return found
