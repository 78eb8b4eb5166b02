"""Staging: Parquet parts under an ObjectStoragePath root (`file://` locally, `s3://` in production).

Tasks hand each other small manifests through XCom; the records themselves stay in staging. Raw
parts keep every Zuora field as text, exactly as received, so that a malformed value reaches the
mapping (and its quarantine) instead of failing the extraction.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from airflow.sdk import ObjectStoragePath, Variable

from . import settings
from .settings import STAGING_RETENTION_S, STAGING_ROOT_VARIABLE

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

# pandas and pyarrow (about half a second) are imported by the functions that write or read parts:
# the run's last tasks only sweep directories (summary.clean_staging) and start without them.


def default_root() -> str:
    home = os.environ.get("AIRFLOW_HOME", os.path.expanduser("~/airflow"))
    return f"file://{home}/zuora_staging"


def staging_root(explicit: str | None = None) -> ObjectStoragePath:
    root = explicit or Variable.get(STAGING_ROOT_VARIABLE, default=None) or default_root()
    return ObjectStoragePath(root)


def safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def run_dir(root: ObjectStoragePath, family: str, run_id: str) -> ObjectStoragePath:
    return root / safe(family) / safe(run_id)


def as_text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, ensure_ascii=False)


class PartWriter:
    """Streams records into numbered Parquet parts of at most `part_rows` rows (default
    `settings.PART_ROWS`), all columns text. Writers of one task's threads share that budget: each
    takes `part_rows_for(threads)`."""

    def __init__(self, directory: ObjectStoragePath, prefix: str, fields: list[str], part_rows: int = 0) -> None:
        self.directory, self.prefix, self.fields = directory, prefix, fields
        self.part_rows = part_rows or settings.PART_ROWS
        self.lookup = {f.lower(): f for f in fields}  # Zuora may answer crmAccountId__c for CRMAccountId__c
        self.field_set = set(fields)
        self.buffer: dict[str, list] = {f: [] for f in fields}
        self.buffered = 0
        self.parts: list[str] = []
        self.rows = 0

    def add(self, records: Iterable[dict]) -> None:
        fields, field_set, lookup, buffer = self.fields, self.field_set, self.lookup, self.buffer
        for rec in records:
            if not rec.keys() <= field_set:  # another casing (crmAccountId__c for CRMAccountId__c)
                rec = {lookup.get(k.lower(), k): v for k, v in rec.items()}
            for name in fields:
                value = rec.get(name)
                buffer[name].append(value if value is None or value.__class__ is str else as_text(value))
            self.buffered += 1
            if self.buffered >= self.part_rows:
                self.flush()
                buffer = self.buffer

    def flush(self) -> None:
        if not self.buffered:
            return
        import pyarrow as pa

        table = pa.table({f: pa.array(self.buffer[f], type=pa.string()) for f in self.fields})
        path = self.directory / f"{self.prefix}-{len(self.parts):05d}.parquet"
        write_table(path, table)
        self.parts.append(str(path))
        self.rows += self.buffered
        self.buffer = {f: [] for f in self.fields}
        self.buffered = 0


class FrameWriter:
    """Gathers typed frames into numbered Parquet parts of at least `part_rows` rows (default
    `settings.PART_ROWS`; the last part may be smaller): the transform's output, so that the small
    raw parts of an extract's threads become parts a load writes in one transaction each."""

    def __init__(self, directory: ObjectStoragePath, prefix: str, part_rows: int = 0) -> None:
        self.directory, self.prefix = directory, prefix
        self.part_rows = part_rows or settings.PART_ROWS
        self.frames: list[pd.DataFrame] = []
        self.buffered = 0
        self.parts: list[str] = []

    def add(self, frame: pd.DataFrame) -> None:
        if len(frame):
            self.frames.append(frame)
            self.buffered += len(frame)
        if self.buffered >= self.part_rows:
            self.flush()

    def flush(self) -> None:
        if not self.frames:
            return
        import pandas as pd

        frame = self.frames[0] if len(self.frames) == 1 else pd.concat(self.frames, ignore_index=True)
        self.parts.append(write_frame(self.directory / f"{self.prefix}-{len(self.parts):05d}.parquet", frame))
        self.frames, self.buffered = [], 0


def part_rows_for(threads: int) -> int:
    """Rows per part for each of `threads` writers of one task: together they buffer no more than
    one writer alone (memory stays flat whatever the threads); never under MIN_PART_ROWS, never
    over PART_ROWS."""
    return min(settings.PART_ROWS, max(settings.MIN_PART_ROWS, settings.PART_ROWS // max(1, threads)))


def write_table(path: ObjectStoragePath, table: pa.Table) -> None:
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        pq.write_table(table, fh, compression="zstd")


def write_frame(path: ObjectStoragePath, frame: pd.DataFrame) -> str:
    import pyarrow as pa

    write_table(path, pa.Table.from_pandas(frame, preserve_index=False))
    return str(path)


def read_frame(uri: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    with ObjectStoragePath(uri).open("rb") as fh:
        return pq.read_table(fh).to_pandas()


def read_frames(uris: Iterable[str]) -> Iterator[pd.DataFrame]:
    """One part at a time: memory stays at one part whatever the run's size."""
    for uri in uris:
        yield read_frame(uri)


def remove_tree(path: ObjectStoragePath) -> None:
    if path.exists():
        path.rmdir(recursive=True)


# A failed run keeps its staging for its retries and for inspection; a later successful run of the


def _modified(info: dict) -> float | None:
    """A file's modification time from any fsspec backend (local mtime, S3 LastModified, GCS updated)."""
    value = info.get("mtime") or info.get("LastModified") or info.get("updated") or info.get("created")
    if isinstance(value, (int, float)):
        return float(value)
    if hasattr(value, "timestamp"):
        return value.timestamp()
    if isinstance(value, str):
        from .windows import parse_instant

        try:
            return parse_instant(value).timestamp()
        except ValueError:
            return None
    return None


def sweep_stale_runs(family_dir: ObjectStoragePath, now: float, keep_s: float = STAGING_RETENTION_S) -> list[str]:
    """Remove run folders under a family's staging whose newest file is older than `keep_s`.
    A folder whose age cannot be told is kept."""
    removed: list[str] = []
    if not family_dir.exists():
        return removed
    for run in family_dir.iterdir():
        if not run.is_dir():
            continue
        files = run.fs.find(run.path, detail=True).values()
        stamps = [_modified(info) for info in files]
        if any(s is None for s in stamps):
            continue
        if not stamps or max(stamps) < now - keep_s:
            remove_tree(run)
            removed.append(run.name)
    return removed
