"""The contract between tasks: what each step of an object's chain returns (through XCom).

Records never travel here, only where they are staged and how many there were. Each step's result
extends the one it consumed, so a later step (and `finish`) finds everything about the object in
one value: the load's result still names the raw parts the mark step flags from. The results of a
mapped task (one per slice) merge into one (`one_manifest`), with no pandas: the run's last tasks
read them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NotRequired, TypedDict

from .windows import parse_instant

# covered: a run of an Airflow backfill whose interval an earlier run of the same backfill reads
Mode = Literal["sync", "backfill", "dry_run", "replay", "covered"]


class WindowDict(TypedDict):
    """`[lo, hi)` in UTC ISO-8601; `lo` None for the whole history (see windows.Window)."""

    lo: str | None
    hi: str


class ObjectPlan(TypedDict):
    """How one object is read in this run."""

    windows: list[WindowDict]  # time slices, one mapped extract each ([] for objects read otherwise)
    watermark: str | None  # the watermark before the run (None for a first load or a replay)
    by_parent: str | None  # read by the ids of this parent object's records in the run
    id_parts: list[str]  # staged parts with an `id` column: read exactly these records (replay)
    tasks: NotRequired[int]  # mapped extracts reading `windows` dealt round-robin, by threads (default: one each)
    bulk: NotRequired[bool]  # read by Data Query export (a first load or long backfill), see bulk.py
    expected: NotRequired[int]  # records Zuora counted in the window (object and children), when asked


class RunPlan(TypedDict):
    """What a run reads: the `plan` task's (or replay's `resolve` task's) result."""

    family: str
    mode: Mode
    run_id: str
    staging_dir: str  # the run's staging directory (an ObjectStoragePath URI); every step writes below it
    objects: dict[str, ObjectPlan]
    force: bool  # rewrite rows even when their updated_date equals the target's (replay)
    backfill: NotRequired[str]  # how the range was asked for: params, a backfill run, a data interval
    requested: NotRequired[int]  # replay: how many records were asked for


class BulkRead(TypedDict):
    """What a Data Query export read: its jobs and the instant its data is as of."""

    jobs: list[str]
    snapshot: str  # ISO; the watermark stops BULK_WATERMARK_MARGIN before it
    parts: list[str]  # the parts the exports wrote (others of the read came by id)


class ExtractResult(TypedDict):
    family: str
    object: str
    staging_dir: str
    directory: str  # where this object's parts of this run live
    parts: list[str]  # raw Parquet parts (every Zuora field as text)
    rows: int
    pages: int
    api_calls: int
    max_updated: str | None  # newest updatedDate read in the windows (not from dead-letter retries)
    windows: list[WindowDict]
    gone_ids: list[str]  # dead-lettered ids Zuora no longer returns under the family's filters
    retried: int  # dead-lettered records read again by id
    extract_seconds: float
    filters: NotRequired[list[str]]  # the family's filters of the read (a bulk child's parent scope)
    bulk: NotRequired[BulkRead]  # present when read by Data Query export


class ColumnFailure(TypedDict):
    records: int
    sample: str


class TransformResult(ExtractResult):
    raw_parts: list[str]  # the extraction's parts (`parts` now names the mapped ones)
    quarantine_parts: list[str]
    rows_in: int
    rows_out: int
    quarantined: int
    column_failures: dict[str, ColumnFailure]
    transform_seconds: float


class FieldDifference(TypedDict):
    id: str
    changes: dict[str, list]  # column -> [target's value, Zuora's value] as text


class LoadResult(TransformResult):
    dry_run: bool
    loaded: int  # inserted or updated (a dry run: would be)
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    held: int
    resolved: int
    failed_ids: list[str]  # records that did not land: never flagged, children held back
    canceled: int  # delivered before, now outside the family's scope: canceled in the target
    skipped: int  # outside the family's scope and never delivered: nothing sent
    accepted_parts: list[str]  # staged ids the target accepted whose transferred flag is not set yet
    differences: list[FieldDifference]  # a dry run's sample of field-level changes
    load_seconds: float


class MarkResult(TypedDict):
    family: str
    object: str
    staging_dir: str
    directory: str
    parts: list[str]  # staged ids of the documents flagged in this run (read back next)
    marked: int
    mark_failed: int
    rows: int


class HeldParents(TypedDict):
    """A parent's records that did not land, for holding back their children."""

    object: str  # the parent object, e.g. invoices
    key: str  # the child's field naming its parent, e.g. invoiceId
    ids: list[str]  # parent ids that did not land (quarantined, refused, held)


class ObjectResults(TypedDict, total=False):
    """Everything one object's chain returned, as `finish` receives it (a step that did not run
    is None; a mapped extract is a list, one result per slice; an extract maps what it reads)."""

    extract: TransformResult | list[TransformResult] | None
    load: LoadResult | None
    mark: MarkResult | None
    readback: LoadResult | None


class RunRow(TypedDict):
    """One row of `zuora_etl_runs`: one object of one run."""

    run_id: str
    family: str
    object: str
    dag_id: str
    mode: str
    window_lo: object
    window_hi: object
    rows_extracted: int
    rows_loaded: int
    rows_unchanged: int
    rows_quarantined: int
    rows_rejected: int
    rows_marked: int
    rows_held: int  # held back with a parent or a nested child that did not land
    rows_canceled: int  # canceled in the target: delivered before, now outside the family's scope
    rows_skipped: int  # outside the family's scope, never delivered: nothing sent
    rows_inserted: int | None  # a dry run: how many of rows_loaded would be new rows
    api_calls: int
    watermark_before: str | None
    watermark_after: str | None
    seconds: float
    status: str


Moved = dict[str, dict[str, str | None]]  # advance's result: object -> {"from", "to"}


# ---------- the results of mapped tasks, as one ----------
def newer(a: str | None, b: str | None) -> str | None:
    if a is None or b is None:
        return a or b
    return a if parse_instant(a) >= parse_instant(b) else b


def merge(manifests: Sequence[dict]) -> dict:
    """One manifest from several reads of one object (window slices, mapped extracts, retries):
    parts, windows and gone ids concatenated, counts summed, the newest updatedDate kept; the
    transforms' results too (mapped extracts transform their own slices), failures per field summed."""
    out: dict = {"parts": [], "rows": 0, "pages": 0, "max_updated": None, "api_calls": 0, "windows": [], "gone_ids": []}
    lists = ("windows", "gone_ids", "raw_parts", "quarantine_parts")
    sums = ("retried", "extract_seconds", "rows_in", "rows_out", "quarantined", "transform_seconds")
    for m in manifests:
        for k, v in m.items():
            out.setdefault(k, type(v)() if k in (*lists, *sums) else v)
        out["parts"] += m["parts"]
        out["rows"] += m["rows"]
        out["pages"] += m.get("pages", 0)
        out["api_calls"] += m.get("api_calls", 0)
        out["max_updated"] = newer(out["max_updated"], m.get("max_updated"))
        for k in lists:
            if k in m:
                out[k] = [*out[k], *m[k]]
        for k in sums:
            if k in m:
                out[k] = round(out[k] + m[k], 3)
        if "bulk" in m and out["bulk"] is not m["bulk"]:  # exports of several slices: all jobs and parts
            out["bulk"] = _merge_exports(out["bulk"], m["bulk"])
        if "column_failures" in m and out["column_failures"] is not m["column_failures"]:
            out["column_failures"] = _merge_failures(out["column_failures"], m["column_failures"])
    return out


def _merge_failures(a: dict[str, ColumnFailure], b: dict[str, ColumnFailure]) -> dict[str, ColumnFailure]:
    out = dict(a)
    for column, failed in b.items():
        seen = out.get(column)
        out[column] = {"records": seen["records"] + failed["records"], "sample": seen["sample"]} if seen else failed
    return dict(sorted(out.items(), key=lambda item: -item[1]["records"]))


def _merge_exports(a: BulkRead, b: BulkRead) -> BulkRead:
    return {
        "jobs": [*a["jobs"], *b["jobs"]],
        "snapshot": min(a["snapshot"], b["snapshot"], key=parse_instant),
        "parts": [*a["parts"], *b["parts"]],
    }


def one_manifest(value: ExtractResult | Sequence[ExtractResult] | None) -> ExtractResult | None:
    """An object's extraction as one manifest, whether its extract task was mapped over slices (a
    sequence, one per slice) or not."""
    if value is None or isinstance(value, dict):
        return value
    found = [m for m in value if m]
    return merge(found) if found else None  # type: ignore[return-value]
