"""The one extract / transform / load / mark path, shared by sync, backfill, replay and repair.

Each step reads and writes staging and returns a small manifest (a dict fit for XCom).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from airflow.sdk import ObjectStoragePath

from .catalog import ZuoraObject
from .hooks.zuora import ZuoraApiError, ZuoraHook
from .mapping import Mapping, apply_mapping
from .sinks import Sink
from .staging import PartWriter, read_frame, read_frames, write_frame
from .state import StateStore
from .windows import Window, parse_instant

log = logging.getLogger(__name__)

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
    for page in hook.paginate(obj.endpoint, params):
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


def merge(manifests: list[dict]) -> dict:
    out = {"parts": [], "rows": 0, "pages": 0, "max_updated": None, "api_calls": 0}
    for m in manifests:
        out["parts"] += m["parts"]
        out["rows"] += m["rows"]
        out["pages"] += m.get("pages", 0)
        out["api_calls"] += m.get("api_calls", 0)
        out["max_updated"] = _newer(out["max_updated"], m.get("max_updated"))
    return out


def extract_windows(
    make_hook,
    obj: ZuoraObject,
    fields: list[str],
    filters: list[str],
    windows: list[Window],
    directory: ObjectStoragePath,
) -> dict:
    """Extract each window slice, in parallel threads (each with its own hook and token)."""

    def one(i: int, window: Window) -> dict:
        hook = make_hook()
        manifest = extract_pages(hook, obj, fields, [*window.filters(), *filters], directory, f"raw-s{i:02d}")
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


def read_ids(parts: list[str], column: str = "id") -> list[str]:
    ids: list[str] = []
    for part in parts:
        frame = read_frame(part)
        ids.extend(v for v in frame[column].tolist() if v)
    return ids


def transform(mapping: Mapping, manifest: dict, directory: ObjectStoragePath) -> dict:
    """Apply the mapping part by part; write transformed parts and one quarantine part per raw part."""
    started = time.monotonic()
    out = {**manifest, "parts": [], "raw_parts": manifest["parts"], "quarantine_parts": [], "rows_in": 0,
           "rows_out": 0, "quarantined": 0}  # fmt: skip
    for i, frame in enumerate(read_frames(manifest["parts"])):
        good, bad = apply_mapping(mapping, frame)
        out["rows_in"] += len(frame)
        if len(good):
            out["parts"].append(write_frame(directory / f"mapped-{i:05d}.parquet", good))
            out["rows_out"] += len(good)
        if len(bad):
            out["quarantine_parts"].append(write_frame(directory / f"quarantine-{i:05d}.parquet", bad))
            out["quarantined"] += len(bad)
    out["transform_seconds"] = round(time.monotonic() - started, 3)
    if out["quarantined"]:
        log.warning("%s: %d of %d records quarantined", mapping.object, out["quarantined"], out["rows_in"])
    return out


def load(
    sink: Sink,
    mapping: Mapping,
    manifest: dict,
    state: StateStore,
    run_id: str,
    family: str,
    *,
    force: bool = False,
) -> dict:
    """Upsert the transformed parts; ledger every record; dead-letter what did not land."""
    started = time.monotonic()
    obj = mapping.object
    sink.prepare(mapping)
    loaded = unchanged = rejected = 0
    failed_ids: list[str] = []
    for frame in read_frames(manifest.get("quarantine_parts", [])):
        items = [(None if r != r else r, reason, payload) for r, reason, payload in frame.itertuples(index=False)]
        state.dead_letter(run_id, family, obj, "transform", items)
        state.record_outcomes(run_id, family, obj, "quarantined", [(r, None) for r, _, _ in items])
        failed_ids += [r for r, _, _ in items if r]
    for frame in read_frames(manifest["parts"]):
        outcome = sink.upsert(mapping, frame, force=force)
        updated = dict(zip(frame[mapping.key], frame["updated_date"], strict=True))
        state.record_outcomes(run_id, family, obj, "loaded", [(k, updated[k]) for k in outcome.written])
        state.record_outcomes(run_id, family, obj, "unchanged", [(k, updated[k]) for k in outcome.unchanged])
        if outcome.rejected:
            raw = frame.set_index(mapping.key)
            state.dead_letter(run_id, family, obj, "load", [
                (k, reason, raw.loc[k].to_json(date_format="iso", force_ascii=False)) for k, reason in outcome.rejected
            ])  # fmt: skip
            state.record_outcomes(run_id, family, obj, "rejected", [(k, updated[k]) for k, _ in outcome.rejected])
            failed_ids += [k for k, _ in outcome.rejected]
        loaded += len(outcome.written)
        unchanged += len(outcome.unchanged)
        rejected += len(outcome.rejected)
    if rejected:
        log.warning("%s: %d records refused by the target (see zuora_etl_dead_letters)", obj, rejected)
    return {**manifest, "loaded": loaded, "unchanged": unchanged, "rejected": rejected, "failed_ids": failed_ids,
            "load_seconds": round(time.monotonic() - started, 3)}  # fmt: skip


def mark_transferred(hook: ZuoraHook, obj: ZuoraObject, manifest: dict) -> tuple[list[str], list[tuple[str, str]]]:
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
