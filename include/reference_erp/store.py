"""The reference ERP's storage: documents, every version written, and idempotency keys in SQLite.

One connection in WAL mode, shared by the server's threads behind a re-entrant lock: a write request
runs in one `transaction()` (the idempotency lookup, the change and the stored answer commit
together, or not at all), and a reader never sees half of one.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    collection  TEXT NOT NULL,
    external_id TEXT NOT NULL,
    number      INTEGER NOT NULL,
    erp_id      TEXT NOT NULL,
    status      TEXT NOT NULL,
    version     INTEGER NOT NULL,
    document    TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (collection, external_id),
    UNIQUE (collection, number)
);
CREATE TABLE IF NOT EXISTS history (
    collection  TEXT NOT NULL,
    external_id TEXT NOT NULL,
    version     INTEGER NOT NULL,
    op          TEXT NOT NULL,
    document    TEXT NOT NULL,
    reason      TEXT,
    at          TEXT NOT NULL,
    PRIMARY KEY (collection, external_id, version)
);
CREATE TABLE IF NOT EXISTS idempotency_keys (
    key         TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status      INTEGER NOT NULL,
    body        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
"""


class NotFound(Exception):
    pass


class Exists(Exception):
    def __init__(self, erp_id: str) -> None:
        super().__init__(erp_id)
        self.erp_id = erp_id


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def wrapper_key(body: dict) -> str | None:
    """The key of a wrapped document (`{"invoice": {...}}`: one key whose value is an object)."""
    if len(body) == 1:
        key, value = next(iter(body.items()))
        if isinstance(value, dict):
            return key
    return None


def external_id_of(body: dict) -> object:
    """`body["external_id"]`, or the inner object's for a wrapped document; None when absent."""
    key = wrapper_key(body)
    return (body[key] if key is not None else body).get("external_id")


def merge(document: dict, patch: dict) -> dict:
    """A shallow merge of `patch` into `document`; for a wrapped document, into its inner object
    (a patch wrapped under the same key gives its inner object, any other patch its own keys)."""
    key = wrapper_key(document)
    if key is None:
        return {**document, **patch}
    inner = patch[key] if wrapper_key(patch) == key else patch
    return {key: {**document[key], **inner}}


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _view(row: sqlite3.Row) -> dict:
    return {
        "id": row["erp_id"],
        "external_id": row["external_id"],
        "status": row["status"],
        "version": row["version"],
        "document": json.loads(row["document"]),
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


class Store:
    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA busy_timeout=5000")
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")

    # ---------- reads ----------
    def _row(self, collection: str, external_id: str) -> sqlite3.Row | None:
        with self.lock:
            return self.conn.execute(
                "SELECT * FROM documents WHERE collection = ? AND external_id = ?", (collection, external_id)
            ).fetchone()

    def get(self, collection: str, external_id: str) -> dict | None:
        row = self._row(collection, external_id)
        return _view(row) if row is not None else None

    def documents(self, collection: str) -> list[dict]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT * FROM documents WHERE collection = ? ORDER BY number", (collection,)
            ).fetchall()
        return [_view(row) for row in rows]

    def history(self, collection: str, external_id: str) -> list[dict]:
        with self.lock:
            rows = self.conn.execute(
                "SELECT * FROM history WHERE collection = ? AND external_id = ? ORDER BY version",
                (collection, external_id),
            ).fetchall()
        out = []
        for row in rows:
            entry = {
                "version": row["version"],
                "op": row["op"],
                "document": json.loads(row["document"]),
                "at": row["at"],
            }
            if row["op"] == "cancel":
                entry["reason"] = row["reason"]
            out.append(entry)
        return out

    def counts(self) -> dict[str, int]:
        with self.lock:
            rows = self.conn.execute("SELECT collection, COUNT(*) FROM documents GROUP BY collection").fetchall()
        return {collection: n for collection, n in rows}

    # ---------- writes (inside a transaction) ----------
    def _record(self, collection: str, external_id: str, version: int, op: str, document: str, at: str,
                reason: str | None = None) -> None:  # fmt: skip
        self.conn.execute(
            "INSERT INTO history (collection, external_id, version, op, document, reason, at) VALUES (?,?,?,?,?,?,?)",
            (collection, external_id, version, op, document, reason, at),
        )

    def create(self, collection: str, external_id: str, document: dict) -> dict:
        """Raises Exists (with the ERP id) when the collection holds that external id, whatever its status."""
        with self.lock:
            row = self._row(collection, external_id)
            if row is not None:
                raise Exists(row["erp_id"])
            (number,) = self.conn.execute(
                "SELECT COALESCE(MAX(number), 0) + 1 FROM documents WHERE collection = ?", (collection,)
            ).fetchone()
            erp_id, at, doc = f"{collection.upper()}-{number:06d}", now_iso(), _dumps(document)
            self.conn.execute(
                "INSERT INTO documents VALUES (?,?,?,?,?,?,?,?,?)",
                (collection, external_id, number, erp_id, "active", 1, doc, at, at),
            )
            self._record(collection, external_id, 1, "create", doc, at)
            return self.get(collection, external_id)  # type: ignore[return-value]

    def update(self, collection: str, external_id: str, document: dict, op: str) -> dict:
        """A new version (`replace` or `patch`), active again if it was canceled; raises NotFound."""
        with self.lock:
            row = self._row(collection, external_id)
            if row is None:
                raise NotFound
            version, at, doc = row["version"] + 1, now_iso(), _dumps(document)
            self.conn.execute(
                "UPDATE documents SET status = 'active', version = ?, document = ?, updated_at = ?"
                " WHERE collection = ? AND external_id = ?",
                (version, doc, at, collection, external_id),
            )
            self._record(collection, external_id, version, op, doc, at)
            return self.get(collection, external_id)  # type: ignore[return-value]

    def cancel(self, collection: str, external_id: str, reason: str | None) -> dict:
        """Canceled, one new version; an already canceled document is left as it is. Raises NotFound."""
        with self.lock:
            row = self._row(collection, external_id)
            if row is None:
                raise NotFound
            if row["status"] == "canceled":
                return _view(row)
            version, at = row["version"] + 1, now_iso()
            self.conn.execute(
                "UPDATE documents SET status = 'canceled', version = ?, updated_at = ?"
                " WHERE collection = ? AND external_id = ?",
                (version, at, collection, external_id),
            )
            self._record(collection, external_id, version, "cancel", row["document"], at, reason)
            return self.get(collection, external_id)  # type: ignore[return-value]

    # ---------- idempotency keys ----------
    def recall(self, key: str) -> tuple[str, int, dict] | None:
        """(fingerprint, status, body) stored under an Idempotency-Key."""
        with self.lock:
            row = self.conn.execute(
                "SELECT fingerprint, status, body FROM idempotency_keys WHERE key = ?", (key,)
            ).fetchone()
        return (row["fingerprint"], row["status"], json.loads(row["body"])) if row is not None else None

    def remember(self, key: str, fingerprint: str, status: int, body: dict) -> None:
        with self.lock:
            self.conn.execute(
                "INSERT INTO idempotency_keys (key, fingerprint, status, body, created_at) VALUES (?,?,?,?,?)",
                (key, fingerprint, status, _dumps(body), now_iso()),
            )

    def reset(self) -> None:
        """Forget every document, version and key."""
        with self.transaction():
            for table in ("documents", "history", "idempotency_keys"):
                self.conn.execute(f"DELETE FROM {table}")
