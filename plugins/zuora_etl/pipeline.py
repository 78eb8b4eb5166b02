"""The one extract / transform / load / mark path, shared by sync, backfill, replay and repair.

Each step reads and writes staging and returns a small manifest (a dict fit for XCom).
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

import pandas as pd
from airflow.sdk import ObjectStoragePath

from .catalog import ZuoraObject
from .hooks.zuora import ZuoraApiError, ZuoraHook
from .manifests import ExtractResult, HeldParents, LoadResult, TransformResult
from .mapping import CARRY_PREFIX, Mapping, apply_mapping
from .settings import DRY_RUN_SAMPLES
from .sinks import Sink
from .staging import PartWriter, read_frame, read_frames, write_frame
from .state import PENDING, StateStore
from .windows import Window, parse_instant

log = logging.getLogger(__name__)

# Records the volume probe reads: one page, Object Query's largest.
PROBE_PAGE = 99
# Ids per `id.IN:[...]` request: 40 ids of 32 characters keep the URL near 1.5 kB, far from any
# proxy's limit, while a page of 99 still fits the answer of 40 parents' items in most tenants.
IN_CHUNK = 40


def extraction_fields(mapping: Mapping, extra: list[str] = ()) -> list[str]:
    return sorted({"id", "updatedDate", *mapping.source_fields(), *extra})


def _newer(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return a if parse_instant(a) >= parse_instant(b) else b


def _stream(hook: ZuoraHook, obj: ZuoraObject, fields: list[str], filters: list[str], writer: PartWriter) -> dict:
    """Every page of one query, oldest first, into the writer's parts; memory holds one part at most."""
    params = [("sort[]", "updatedDate.ASC"), ("fields[]", ",".join(fields))] + [("filter[]", f) for f in filters]
    pages, max_updated = 0, None
    for page in hook.paginate(obj.endpoint, params, require=("id", "updatedDate")):
        pages += 1
        writer.add(page)
        for rec in page[-1:]:  # sorted ascending: the page's last record is its newest
            max_updated = _newer(max_updated, rec.get("updatedDate"))
    return {"pages": pages, "max_updated": max_updated}


def extract_pages(
    hook: ZuoraHook,
    obj: ZuoraObject,
    fields: list[str],
    filters: list[str],
    directory: ObjectStoragePath,
    prefix: str,
) -> dict:
    """One query (a window slice and the family's filters) into Parquet parts."""
    writer = PartWriter(directory, prefix, fields)
    streamed = _stream(hook, obj, fields, filters, writer)
    writer.flush()
    return {"parts": writer.parts, "rows": writer.rows, **streamed}


def merge(manifests: Sequence[dict]) -> dict:
    """One manifest from several reads of one object (window slices, mapped extracts, retries):
    parts, windows and gone ids concatenated, counts summed, the newest updatedDate kept."""
    out: dict = {"parts": [], "rows": 0, "pages": 0, "max_updated": None, "api_calls": 0}
    lists, sums = ("windows", "gone_ids"), ("retried", "extract_seconds")
    for m in manifests:
        for k, v in m.items():
            out.setdefault(k, v if k not in (*lists, *sums) else type(v)())
        out["parts"] += m["parts"]
        out["rows"] += m["rows"]
        out["pages"] += m.get("pages", 0)
        out["api_calls"] += m.get("api_calls", 0)
        out["max_updated"] = _newer(out["max_updated"], m.get("max_updated"))
        for k in lists:
            out[k] = [*out.get(k, []), *m.get(k, [])]
        for k in sums:
            if k in m:
                out[k] = round(out.get(k, 0) + m[k], 3)
    return out


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


def one_manifest(value: ExtractResult | Sequence[ExtractResult] | None) -> ExtractResult | None:
    """An object's extraction as one manifest, whether its extract task was mapped over slices (a
    sequence, one per slice) or not."""
    if value is None or isinstance(value, dict):
        return value
    found = [m for m in value if m]
    return merge(found) if found else None  # type: ignore[return-value]


def stage_ids(directory: ObjectStoragePath, name: str, ids: Sequence[str]) -> list[str]:
    """Ids as one staged part (column `id`), for a next step to read by: XCom carries only its path."""
    if not ids:
        return []
    return [write_frame(directory / f"{name}.parquet", pd.DataFrame({"id": list(dict.fromkeys(ids))}))]


def extract_windows(
    make_hook,
    obj: ZuoraObject,
    fields: list[str],
    filters: list[str],
    windows: list[Window],
    directory: ObjectStoragePath,
    prefix: str = "raw-s",
) -> dict:
    """Extract each window slice, in parallel threads (each with its own hook and token); part
    names carry `prefix` (mapped tasks put their map index in it, so no two tasks share a name)."""

    def one(i: int, window: Window) -> dict:
        hook = make_hook()
        manifest = extract_pages(hook, obj, fields, [*window.filters(), *filters], directory, f"{prefix}{i:02d}")
        manifest["api_calls"] = hook.api_calls
        return manifest

    if len(windows) <= 1:
        return merge([one(i, w) for i, w in enumerate(windows)])
    with ThreadPoolExecutor(max_workers=len(windows)) as pool:
        return merge(list(pool.map(one, range(len(windows)), windows)))


def extract_ids(
    hook: ZuoraHook,
    obj: ZuoraObject,
    key: str,
    ids: list[str],
    fields: list[str],
    filters: list[str],
    directory: ObjectStoragePath,
    prefix: str = "raw-ids",
) -> dict:
    """Extract the records whose `key` is one of `ids` (children of given parents, or replay)."""
    writer = PartWriter(directory, prefix, fields)
    pages, max_updated = 0, None
    unique = list(dict.fromkeys(i for i in ids if i))
    for start in range(0, len(unique), IN_CHUNK):
        chunk_filter = f"{key}.IN:[{','.join(unique[start : start + IN_CHUNK])}]"
        streamed = _stream(hook, obj, fields, [chunk_filter, *filters], writer)
        pages += streamed["pages"]
        max_updated = _newer(max_updated, streamed["max_updated"])
    writer.flush()
    return {"parts": writer.parts, "rows": writer.rows, "pages": pages, "max_updated": max_updated,
            "api_calls": hook.api_calls}  # fmt: skip


def read_ids(parts: Sequence[str], column: str = "id") -> list[str]:
    ids: list[str] = []
    for part in parts:
        frame = read_frame(part)
        ids.extend(v for v in frame[column].tolist() if v)
    return ids


def transform(
    mapping: Mapping, manifest: ExtractResult, directory: ObjectStoragePath, carry: tuple[str, ...] = ()
) -> TransformResult:
    """Apply the mapping part by part; write transformed parts and one quarantine part per raw part.
    Counts, per Zuora field, the records that failed it (`column_failures`, with a sample reason)."""
    started = time.monotonic()
    out: dict = {**manifest, "parts": [], "raw_parts": manifest["parts"], "quarantine_parts": [], "rows_in": 0,
           "rows_out": 0, "quarantined": 0, "column_failures": {}}  # fmt: skip
    failures: Counter[str] = Counter()
    samples: dict[str, str] = {}
    for i, frame in enumerate(read_frames(manifest["parts"])):
        good, bad = apply_mapping(mapping, frame, carry)
        out["rows_in"] += len(frame)
        if len(good):
            out["parts"].append(write_frame(directory / f"mapped-{i:05d}.parquet", good))
            out["rows_out"] += len(good)
        if len(bad):
            out["quarantine_parts"].append(write_frame(directory / f"quarantine-{i:05d}.parquet", bad))
            out["quarantined"] += len(bad)
            for columns, reason in zip(bad["columns"], bad["reason"], strict=True):
                for column in str(columns).split(","):
                    failures[column] += 1
                    samples.setdefault(column, reason)
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
) -> LoadResult:
    """Upsert the transformed parts; ledger every record; dead-letter what did not land.

    Records whose parent did not land (`held_parents`: the parent's failed ids and the carried
    field naming the parent) are held back with it. Open dead letters of records that land now are
    resolved, and so are those Zuora no longer has (`gone_ids` of the extraction)."""
    started = time.monotonic()
    obj = mapping.object
    sink.prepare(mapping)
    settle_pending(sink, mapping, state, family, alive)
    open_letters = set(state.open_dead_letter_ids(family, obj))
    loaded = unchanged = rejected = held = resolved = 0
    failed_ids: list[str] = []
    for frame in read_frames(manifest.get("quarantine_parts", [])):
        items = [(None if r != r else r, reason, payload) for r, reason, payload in
                 frame[["record_id", "reason", "payload"]].itertuples(index=False)]  # fmt: skip
        state.dead_letter(run_id, family, obj, "transform", items)
        state.record_outcomes(run_id, family, obj, "quarantined", [(r, None) for r, _, _ in items])
        failed_ids += [r for r, _, _ in items if r]
    for frame in read_frames(manifest["parts"]):
        if held_parents and held_parents["ids"]:
            parent_ids = frame[CARRY_PREFIX + held_parents["key"]]
            waiting = frame[parent_ids.isin(set(held_parents["ids"]))]
            if len(waiting):
                frame = frame.drop(waiting.index)
                _hold(state, run_id, family, obj, mapping, waiting, held_parents)
                failed_ids += list(waiting[mapping.key])
                held += len(waiting)
        updated = dict(zip(frame[mapping.key], frame["updated_date"], strict=True))
        # Written ahead: a worker that dies after the target commits leaves these pending rows
        # behind, and the next load settles them against the target.
        state.record_outcomes(run_id, family, obj, PENDING, updated.items())
        outcome = sink.upsert(mapping, frame, force=force)
        state.settle(run_id, family, obj, {"unchanged": outcome.unchanged,
                                           "rejected": [k for k, _ in outcome.rejected]}, rest="loaded")  # fmt: skip
        if outcome.rejected:
            raw = frame.set_index(mapping.key)[[c for c in frame.columns if not c.startswith(CARRY_PREFIX)]]
            state.dead_letter(run_id, family, obj, "load", [
                (k, reason, raw.loc[k].to_json(date_format="iso", force_ascii=False)) for k, reason in outcome.rejected
            ])  # fmt: skip
            failed_ids += [k for k, _ in outcome.rejected]
        if open_letters:
            landed = [k for k in (*outcome.written, *outcome.unchanged) if k in open_letters]
            resolved += state.resolve_dead_letters(family, obj, landed, "loaded")
        loaded += len(outcome.written)
        unchanged += len(outcome.unchanged)
        rejected += len(outcome.rejected)
    gone = [i for i in manifest.get("gone_ids", []) if i in open_letters]
    resolved += state.resolve_dead_letters(family, obj, gone, "gone") if gone else 0
    if rejected:
        log.warning("%s: %d records refused by the target (see zuora_etl_dead_letters)", obj, rejected)
    if held:
        log.warning("%s: %d records held back with their %s that did not land", obj, held, held_parents["object"])
    if resolved:
        log.info("%s: %d dead letters resolved (%d gone from Zuora)", obj, resolved, len(gone))
    return {**manifest, "dry_run": False, "loaded": loaded, "inserted": 0, "updated": 0, "unchanged": unchanged,
            "rejected": rejected, "held": held, "resolved": resolved, "failed_ids": failed_ids, "differences": [],
            "load_seconds": round(time.monotonic() - started, 3)}  # fmt: skip


def preview(sink: Sink, mapping: Mapping, manifest: TransformResult, *, force: bool = False) -> LoadResult:
    """A dry run's load: what the target would gain, counted and sampled, writing nothing (no
    table, no ledger, no dead letter)."""
    started = time.monotonic()
    inserted = updated = unchanged = 0
    differences: list = []
    for frame in read_frames(manifest["parts"]):
        diff = sink.compare(mapping, frame, force=force)
        inserted += len(diff.inserted)
        updated += len(diff.updated)
        unchanged += len(diff.unchanged)
        differences += diff.differences[: max(0, DRY_RUN_SAMPLES - len(differences))]
    log.info("%s (dry run): %d would be inserted, %d updated, %d unchanged", mapping.object, inserted, updated,
             unchanged)  # fmt: skip
    return {**manifest, "dry_run": True, "loaded": inserted + updated, "inserted": inserted, "updated": updated,
            "unchanged": unchanged, "rejected": 0, "held": 0, "resolved": 0, "failed_ids": [],
            "differences": differences, "load_seconds": round(time.monotonic() - started, 3)}  # fmt: skip


def _hold(
    state: StateStore, run_id: str, family: str, obj: str, mapping: Mapping, rows, held_parents: HeldParents
) -> None:
    parent, key = held_parents["object"], held_parents["key"]
    letters = [
        (rid, f"held back: its {parent} {pid} did not land ({key})", None)
        for rid, pid in zip(rows[mapping.key], rows[CARRY_PREFIX + key], strict=True)
    ]
    state.dead_letter(run_id, family, obj, "held", letters)
    state.record_outcomes(run_id, family, obj, "held", zip(rows[mapping.key], rows["updated_date"], strict=True))


def mark_transferred(
    hook: ZuoraHook, obj: ZuoraObject, manifest: LoadResult
) -> tuple[list[str], list[tuple[str, str]]]:
    """Flag the loaded documents `TransferredToAccounting=Yes` in Zuora; returns (marked, failures).

    Documents already flagged are left alone, so a rerun does not mark twice; documents that did
    not land (quarantined, refused) are never flagged."""
    skip = set(manifest.get("failed_ids", []))
    todo: list[str] = []
    for frame in read_frames(manifest.get("raw_parts", [])):
        flags = frame["transferredToAccounting"] if "transferredToAccounting" in frame else [None] * len(frame)
        todo += [i for i, flag in zip(frame["id"], flags, strict=True) if i not in skip and flag != "Yes"]
    todo = list(dict.fromkeys(todo))
    marked: list[str] = []
    failures: list[tuple[str, str]] = []
    if obj.action_type:
        answers = hook.action_update(obj.action_type, [{"Id": i, "TransferredToAccounting": "Yes"} for i in todo])
        for doc_id, answer in zip(todo, answers, strict=True):
            if answer.get("Success"):
                marked.append(doc_id)
            else:
                errors = answer.get("Errors") or [{}]
                failures.append((doc_id, f"{errors[0].get('Code')}: {errors[0].get('Message')}"))
    elif obj.memo_path:
        for doc_id in todo:
            try:
                hook.update_memo(obj.memo_path, doc_id, {"transferredToAccounting": "Yes"})
                marked.append(doc_id)
            except ZuoraApiError as exc:
                if exc.retryable:
                    raise
                failures.append((doc_id, str(exc)))
    return marked, failures
