"""One Sink interface for every target (SQL databases, REST APIs); sync, replay and repair all
load through it.

The load step decides per record, from the sync ledger, what the target gets (column `__action`:
create, update, or cancel for a delivered record that left the family's scope) and hands the
digest of what was last delivered (`__last_digest`). A SQL sink upserts every row whatever its
action (a cancel is the row taking its new status); an HTTP sink sends each action as its request.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from airflow.sdk.exceptions import AirflowFailException

from ..mapping import Mapping

Children = dict[str, pd.DataFrame]


ACTION_COLUMN = "__action"  # create, update or cancel (see the module docstring)
LAST_DIGEST_COLUMN = "__last_digest"  # digest of the payload last delivered (HTTP targets), or None
PARENT_COLUMN = "__parent_id"  # in a nested child's rows: the id of the document they belong to
# Reconciliation's soft delete: when Zuora stopped having the row (deleted, or out of the family's
# selection); the row stays for people to see, flagged, never silently deleted.
DELETED_COLUMN = "zuora_deleted_at"
# Rows per chunk of a streamed read of the target: a few hundred kB of keys and compared values.
READ_CHUNK = 5_000


@dataclass
class BatchOutcome:
    written: list[str] = field(default_factory=list)  # keys inserted or updated
    unchanged: list[str] = field(default_factory=list)  # keys the target already had as new or newer
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (key, reason) the target refused
    canceled: list[str] = field(default_factory=list)  # keys canceled in the target
    digests: dict[str, str] = field(default_factory=dict)  # key -> digest of the payload delivered

    def extend(self, other: BatchOutcome) -> None:
        self.written += other.written
        self.unchanged += other.unchanged
        self.rejected += other.rejected
        self.canceled += other.canceled
        self.digests.update(other.digests)


@dataclass
class Comparison:
    """What upserting one part would do (a dry run), without doing it."""

    inserted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    differences: list[dict] = field(default_factory=list)  # {"id", "changes": {column: [target, zuora]}}


class Sink(ABC):
    """Upserts mapped rows by key, keeping the newer `updated_date`.

    `force=True` (replay, repair) also rewrites rows whose `updated_date` equals the target's: Zuora
    changes some fields without bumping updatedDate.

    `children` (object -> its mapped rows, with the carried parent key) are the rows a target
    nests in their parents' documents; targets that store children on their own ignore them.
    """

    # Whether the load step must hand every row its action and last digest from the ledger (an
    # API cannot be asked what it holds); a SQL sink compares with its table itself.
    needs_history: bool = False

    def nested(self, mapping: Mapping) -> bool:
        """Whether `mapping`'s rows travel inside their parents' documents (then `children`)."""
        return False

    @abstractmethod
    def prepare(self, mapping: Mapping) -> None:
        """Make the target ready for this mapping (create the table, add new columns)."""

    @abstractmethod
    def upsert(
        self, mapping: Mapping, frame: pd.DataFrame, *, force: bool = False, children: Children | None = None
    ) -> BatchOutcome:
        """Write one part's rows; each batch commits on its own."""

    @abstractmethod
    def compare(
        self, mapping: Mapping, frame: pd.DataFrame, *, force: bool = False, children: Children | None = None
    ) -> Comparison:
        """What `upsert` would do with this part, by the same rule, writing nothing; the field-level
        differences of the first rows that would be updated."""

    @abstractmethod
    def read_keys(self, mapping: Mapping) -> dict[str, object]:
        """Every key in the target with its updated_date (reconciliation)."""

    def iter_rows(
        self,
        mapping: Mapping,
        columns: Sequence[str],
        *,
        lo: datetime | None = None,
        hi: datetime | None = None,
        parent: tuple[str, Sequence[str]] | None = None,
        chunk: int = READ_CHUNK,
    ) -> Iterator[list[dict]]:
        """The target's rows ordered by key, in chunks (reconciliation): the key, `updated_date`,
        `columns` and `DELETED_COLUMN` (None where the table has no such column), of the rows whose
        updated_date is in `[lo, hi)` and, with `parent` (column, values), whose column is one of
        those values. Nothing when the table does not exist."""
        raise AirflowFailException(f"{type(self).__name__}: reconciliation cannot read this target")

    def rows_by_key(self, mapping: Mapping, columns: Sequence[str], keys: Sequence[str]) -> dict[str, dict]:
        """The rows of `keys` the target holds (same columns as `iter_rows`)."""
        raise AirflowFailException(f"{type(self).__name__}: reconciliation cannot read this target")

    def set_deleted(self, mapping: Mapping, marks: dict[str, datetime | None]) -> int:
        """Set `DELETED_COLUMN` of the rows of `marks` to when Zuora stopped having them (None
        clears it: the record is back); the column is added on first use. Returns rows changed."""
        raise AirflowFailException(f"{type(self).__name__}: reconciliation cannot mark rows of this target")

    @abstractmethod
    def updated_dates(self, mapping: Mapping, keys: list[str]) -> dict[str, object]:
        """The updated_date the target holds for each of `keys` it has (settling a dead worker's
        pending ledger rows)."""

    @abstractmethod
    def claim(self, mapping: Mapping, family: str, scope: str) -> None:
        """Register that `family` loads `mapping.table` with the records `scope` describes; raise
        `SinkConflictError` when another family already loads that table with other records (the
        CRM's Draft invoices must never reach the ERP's invoices table)."""


class SinkConflictError(AirflowFailException):
    """Two families would mix different record sets in one target table: no retry can fix it."""


class SinkConfigError(AirflowFailException):
    """The target cannot be written as configured (an HTTP object without an endpoint file, a
    payload reading an unknown column): no retry can fix it."""


def records(frame: pd.DataFrame) -> list[dict]:
    """Plain Python rows with None for every missing value: an object column's `tolist()` gives
    Python scalars (float, int, bool, date, Timestamp), never the numpy ones DB drivers refuse."""
    columns = [frame[name].astype(object).where(frame[name].notna(), None).tolist() for name in frame.columns]
    names = list(frame.columns)
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]
