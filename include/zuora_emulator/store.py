"""The emulated tenant's data: a SQLite file, queried the way Object Query reads it.

SQLite gives the emulator indexed filters, keyset cursors, atomic mutations and a SQL engine for
Data Query without holding the tenant in memory; a 1M-item tenant is a file, not a heap.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from .errors import ApiError
from .generator import TenantGenerator
from .schema import BOOL, DATE, DATETIME, INT, NUM, OBJECTS, SQL_TYPES, STR, ObjectSpec
from .timefmt import DATE_RE, TenantClock

GENERATOR_VERSION = 4  # bump when generated data changes, so cached tenants are rebuilt
OPERATORS = ("EQ", "NE", "LT", "GT", "LE", "GE", "SW", "IN")


def default_cache_dir() -> Path:
    return Path(os.environ.get("ZUORA_EMULATOR_CACHE", Path.home() / ".cache" / "zuora_emulator"))


def default_anchor() -> date:
    """Generated history ends at the start of today (UTC): deterministic within a day, always past."""
    return datetime.now(UTC).date()


def _create_schema(conn: sqlite3.Connection) -> None:
    for spec in OBJECTS.values():
        cols = ", ".join(
            f"{name} {SQL_TYPES[kind]}" + (" PRIMARY KEY" if name == "id" else "") for name, kind in spec.fields
        )
        conn.execute(f"CREATE TABLE IF NOT EXISTS {spec.table} ({cols}) WITHOUT ROWID")


def _create_indexes(conn: sqlite3.Connection) -> None:
    for spec in OBJECTS.values():
        t = spec.table
        conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_updated ON {t} (updatedDate, id)")
        conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_created ON {t} (createdDate, id)")
        for name in spec.filterable - {"id", "updatedDate", "createdDate"}:
            conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_{name} ON {t} ({name})")
        if spec.number_field:
            conn.execute(f"CREATE INDEX IF NOT EXISTS {t}_number ON {t} ({spec.number_field})")
        # Data Query reads Zuora's table names (account, invoiceitem...); views give them.
        if spec.data_query_table and spec.data_query_table != t:
            conn.execute(f"CREATE VIEW IF NOT EXISTS {spec.data_query_table} AS SELECT * FROM {t}")


def build_tenant(path: Path, scale: str, seed: int, anchor: date) -> dict[str, int]:
    """Generate a tenant into a new SQLite file at `path`."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    _create_schema(conn)
    counts = TenantGenerator(conn, scale, seed, anchor).run()
    _create_indexes(conn)
    conn.execute("ANALYZE")
    conn.commit()
    conn.close()
    return counts


def cached_tenant(scale: str, seed: int, anchor: date, cache_dir: Path | None = None) -> Path:
    """The pristine tenant file for these settings, generated once and reused."""
    cache_dir = cache_dir or default_cache_dir()
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"tenant-v{GENERATOR_VERSION}-{scale}-{seed}-{anchor.isoformat()}.sqlite"
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=cache_dir, suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
        build_tenant(Path(tmp), scale, seed, anchor)
        os.replace(tmp, path)  # atomic: a concurrent builder never sees half a file
    return path


@dataclass
class Filter:
    field: str
    op: str
    value: object  # converted to the stored representation; a list for IN; None for null


@dataclass
class Query:
    spec: ObjectSpec
    fields: list[str]
    filters: list[Filter] = field(default_factory=list)
    sort_field: str = "updatedDate"
    descending: bool = True
    page_size: int = 10
    include_nulls: bool = False
    expand: dict[str, list[str]] = field(default_factory=dict)  # expand name -> child fields

    def shape(self) -> str:
        """What a cursor is bound to: the same query, other parameters unchanged."""
        text = json.dumps(
            [
                self.spec.name,
                sorted(f"{f.field}.{f.op}:{f.value}" for f in self.filters),
                self.sort_field,
                self.descending,
            ],
            default=str,
        )
        return hashlib.sha1(text.encode()).hexdigest()[:12]


def encode_cursor(query: Query, last_value: object, last_id: str) -> str:
    raw = json.dumps({"h": query.shape(), "v": last_value, "i": last_id}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(query: Query, cursor: str) -> tuple[object, str]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if raw["h"] != query.shape():
            raise ValueError("cursor belongs to another query")
        return raw["v"], raw["i"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiError(400, 50000021, f"Invalid cursor: {cursor[:40]}") from exc


class Store:
    """A working copy of a tenant, safe for concurrent readers and one writer at a time."""

    def __init__(self, path: Path, clock: TenantClock, seed: int = 0) -> None:
        self.path = path
        self.clock = clock
        self.write_lock = threading.Lock()
        self._local = threading.local()
        self._rng = random.Random(seed ^ 0x5EED)
        conn = sqlite3.connect(path)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.close()

    @classmethod
    def working_copy(cls, template: Path, workdir: Path, clock: TenantClock, seed: int = 0) -> Store:
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / "tenant.sqlite"
        shutil.copyfile(template, path)
        return cls(path, clock, seed)

    def conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    # ---------- reading ----------
    def _convert(self, spec: ObjectSpec, name: str, op: str, text: str) -> object:
        kind = spec.types[name]
        if text.lower() == "null":
            if op not in ("EQ", "NE"):
                raise ApiError(
                    400,
                    50000027,
                    f"Invalid filter parameter: null only goes with EQ or NE ({name})",
                )
            return None
        try:
            if kind == DATETIME:
                if " " in text:
                    raise ApiError(
                        400,
                        50000027,
                        f"Invalid datetime '{text}' for {name}: write ISO-8601 with 'T' and an offset",
                    )
                return self.clock.parse(text)
            if kind == DATE:
                if not DATE_RE.match(text):
                    raise ValueError(text)
                return text
            if kind in (INT, NUM):
                return float(text)
            if kind == BOOL:
                if text.lower() not in ("true", "false"):
                    raise ValueError(text)
                return 1 if text.lower() == "true" else 0
            return text
        except ValueError as exc:
            raise ApiError(400, 50000027, f"Invalid filter value '{text}' for {name}") from exc

    def parse_filter(self, spec: ObjectSpec, text: str) -> Filter:
        head, sep, value = text.partition(":")
        name, dot, op = head.rpartition(".")
        if not sep or not dot or op.upper() not in OPERATORS:
            raise ApiError(400, 50000027, f"Invalid filter parameter: {text}")
        op = op.upper()
        canonical = spec.by_lower.get(name.lower())
        if canonical is None or canonical not in spec.filterable:
            raise ApiError(400, 50000027, f"Invalid filter parameter: {name}")
        if op == "SW" and spec.types[canonical] != STR:
            raise ApiError(
                400,
                50000027,
                f"Invalid filter parameter: SW needs a text field ({name})",
            )
        if op == "IN":
            if not (value.startswith("[") and value.endswith("]")):
                raise ApiError(400, 50000027, f"Invalid filter parameter: IN takes [a,b] ({name})")
            items = [v.strip() for v in value[1:-1].split(",") if v.strip()]
            if not items:
                raise ApiError(400, 50000027, f"Invalid filter parameter: empty IN list ({name})")
            return Filter(canonical, op, [self._convert(spec, canonical, "EQ", v) for v in items])
        return Filter(canonical, op, self._convert(spec, canonical, op, value))

    @staticmethod
    def _where(
        spec: ObjectSpec, filters: list[Filter], demote: frozenset[str] = frozenset()
    ) -> tuple[list[str], list[object]]:
        """SQL for the filters; `demote` lists `field.OP`s written `+field` so that SQLite's planner
        takes the cursor's keyset, not the filter, as the index range (else paging goes quadratic)."""
        sql, args = [], []
        ops = {"EQ": "=", "NE": "!=", "LT": "<", "GT": ">", "LE": "<=", "GE": ">="}
        for f in filters:
            if f"{f.field}.{f.op}" in demote:
                sql.append(f"+{f.field} {ops[f.op]} ?")
                args.append(f.value)
                continue
            text = spec.types[f.field] == STR
            nocase = " COLLATE NOCASE" if text else ""
            if f.value is None:
                sql.append(f"{f.field} IS {'NOT ' if f.op == 'NE' else ''}NULL")
            elif f.op == "IN":
                sql.append(f"{f.field}{nocase} IN ({','.join('?' * len(f.value))})")
                args.extend(f.value)
            elif f.op == "SW":
                escaped = str(f.value).replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                sql.append(f"{f.field} LIKE ? ESCAPE '\\'")
                args.append(escaped + "%")
            elif f.op in ("EQ", "NE"):
                # NE keeps nulls out, as a SQL engine (and Zuora's) would.
                sql.append(f"{f.field}{nocase} {ops[f.op]} ?")
                args.append(f.value)
            else:
                sql.append(f"{f.field} {ops[f.op]} ?")
                args.append(f.value)
        return sql, args

    def _renderers(self, spec: ObjectSpec, names: list[str]):
        render = self.clock.render
        out = []
        for name in names:
            kind = spec.types[name]
            if kind == DATETIME:
                out.append((name, render))
            elif kind == BOOL:
                out.append((name, bool))
            elif kind == INT:
                out.append((name, int))
            else:
                out.append((name, None))
        return out

    def _rows_to_dicts(self, rows, renderers, include_nulls: bool) -> list[dict]:
        records = []
        for row in rows:
            rec = {}
            for (name, conv), value in zip(renderers, row, strict=False):
                if value is None:
                    if include_nulls:
                        rec[name] = None
                elif conv is None:
                    rec[name] = value
                else:
                    rec[name] = conv(value)
            records.append(rec)
        return records

    def page(self, q: Query, cursor: str | None) -> tuple[list[dict], str | None]:
        spec = q.spec
        sort = q.sort_field
        bounds = ("LE", "LT") if q.descending else ("GE", "GT")
        demote = frozenset(f"{sort}.{op}" for op in bounds) if cursor else frozenset()
        where, args = self._where(spec, q.filters, demote)
        nullable = sort not in ("id", "createdDate", "updatedDate")
        # Keyset paging on (sort value, id): rows that change between pages are neither skipped nor
        # repeated unless their sort value moves across the cursor, as with Zuora's own cursors.
        key = f"(({sort} IS NOT NULL), ifnull({sort}, 0), id)" if nullable else f"({sort}, id)"
        cmp = "<" if q.descending else ">"
        if cursor:
            last_value, last_id = decode_cursor(q, cursor)
            if nullable:
                where.append(f"{key} {cmp} (?, ?, ?)")
                args.extend(
                    [
                        last_value is not None,
                        last_value if last_value is not None else 0,
                        last_id,
                    ]
                )
            else:
                where.append(f"{key} {cmp} (?, ?)")
                args.extend([last_value, last_id])
        direction = "DESC" if q.descending else "ASC"
        order = (
            f"({sort} IS NOT NULL) {direction}, ifnull({sort}, 0) {direction}, id {direction}"
            if nullable
            else f"{sort} {direction}, id {direction}"
        )
        cols = list(dict.fromkeys([*q.fields, sort, "id"]))
        sql = (
            f"SELECT {','.join(cols)} FROM {spec.table}"
            + (f" WHERE {' AND '.join(where)}" if where else "")
            + f" ORDER BY {order} LIMIT {q.page_size + 1}"
        )
        rows = self.conn().execute(sql, args).fetchall()
        more = len(rows) > q.page_size
        rows = rows[: q.page_size]
        next_cursor = None
        if more:
            last = rows[-1]
            next_cursor = encode_cursor(q, last[cols.index(sort)], last[cols.index("id")])
        records = self._rows_to_dicts(
            [r[: len(q.fields)] for r in rows],
            self._renderers(spec, q.fields),
            q.include_nulls,
        )
        if q.expand and records:
            self._expand(q, [r[cols.index("id")] for r in rows], records)
        return records, next_cursor

    def _expand(self, q: Query, ids: list[str], records: list[dict]) -> None:
        for name, child_fields in q.expand.items():
            child_name, fk = q.spec.children[name]
            child = OBJECTS[child_name]
            cols = list(dict.fromkeys([*child_fields, fk]))
            rows = (
                self.conn()
                .execute(
                    f"SELECT {','.join(cols)} FROM {child.table} WHERE {fk} IN ({','.join('?' * len(ids))}) "
                    f"ORDER BY {fk}, id",
                    ids,
                )
                .fetchall()
            )
            by_parent: dict[str, list] = {}
            fk_at = cols.index(fk)
            for row in rows:
                bucket = by_parent.setdefault(row[fk_at], [])
                # Expanded arrays are cut at pageSize and cannot be paged, as in Zuora.
                if len(bucket) < q.page_size:
                    bucket.append(row[: len(child_fields)])
            key = "".join(p if i == 0 else p.capitalize() for i, p in enumerate(child_name.split("-")))
            renderers = self._renderers(child, child_fields)
            for parent_id, rec in zip(ids, records, strict=True):
                rec[key] = self._rows_to_dicts(by_parent.get(parent_id, []), renderers, q.include_nulls)

    def get(self, q: Query, key: str) -> dict | None:
        spec = q.spec
        cond = "id = ?" + (f" OR {spec.number_field} = ?" if spec.number_field else "")
        args = [key, key] if spec.number_field else [key]
        row = (
            self.conn()
            .execute(
                f"SELECT {','.join(q.fields)}, id FROM {spec.table} WHERE {cond} LIMIT 1",
                args,
            )
            .fetchone()
        )
        if row is None:
            return None
        rec = self._rows_to_dicts([row[:-1]], self._renderers(spec, q.fields), q.include_nulls)[0]
        if q.expand:
            self._expand(q, [row[-1]], [rec])
        return rec

    def truth(self, obj: str, filters: list[Filter] | None = None, spec: ObjectSpec | None = None) -> list[dict]:
        """Every record of an object (optionally filtered), all fields, nulls included, by id.

        `spec` narrows the fields to one tenant's view (without custom fields, say)."""
        spec = spec or OBJECTS[obj]
        names = [n for n, _ in spec.fields]
        where, args = self._where(spec, filters or [])
        sql = f"SELECT {','.join(names)} FROM {spec.table}" + (f" WHERE {' AND '.join(where)}" if where else "")
        rows = self.conn().execute(sql + " ORDER BY id", args).fetchall()
        return self._rows_to_dicts(rows, self._renderers(spec, names), True)

    def counts(self) -> dict[str, int]:
        conn = self.conn()
        return {name: conn.execute(f"SELECT count(*) FROM {s.table}").fetchone()[0] for name, s in OBJECTS.items()}

    # ---------- writing ----------
    def _stored(self, spec: ObjectSpec, name: str, value: object) -> object:
        kind = spec.types.get(name)
        if kind is None:
            raise ApiError(400, 50000027, f"Unknown field {name} on {spec.name}")
        if value is None:
            return None
        if kind == DATETIME:
            if not isinstance(value, str):
                return int(value)
            try:
                return int(self.clock.parse(value))
            except ValueError as exc:
                raise ApiError(400, 50000027, f"Invalid datetime '{value}' for {name}") from exc
        if kind == BOOL:
            return 1 if value else 0
        return value

    def mutate(self, ops: list[dict], at: float | None = None) -> list[dict]:
        """Apply admin mutations atomically; every touched record gets updatedDate = `at` (one second)."""
        second = int(at if at is not None else time.time())
        results = []
        with self.write_lock:
            conn = self.conn()
            try:
                for op in ops:
                    results.append(self._apply(conn, op, second))
                conn.commit()
            except Exception:
                conn.rollback()
                raise
        return results

    def _apply(self, conn: sqlite3.Connection, op: dict, second: int) -> dict:
        kind, obj = op.get("op"), op.get("object")
        if obj not in OBJECTS:
            raise ApiError(400, 50000020, f"Unknown object {obj!r}")
        spec = OBJECTS[obj]
        t = spec.table
        if kind == "create":
            ids = []
            for rec in op.get("records", []):
                values = {k: self._stored(spec, spec.by_lower.get(k.lower(), k), v) for k, v in rec.items()}
                values = {spec.by_lower.get(k.lower(), k): v for k, v in values.items()}
                values.setdefault("id", f"8a{self._rng.getrandbits(120):030x}")
                values.setdefault("createdDate", second)
                values.setdefault("updatedDate", second)
                cols = list(values)
                conn.execute(
                    f"INSERT INTO {t} ({','.join(cols)}) VALUES ({','.join('?' * len(cols))})",
                    [values[c] for c in cols],
                )
                ids.append(values["id"])
            return {
                "op": kind,
                "object": obj,
                "ids": ids,
                "updatedDate": self.clock.render(second),
            }
        ids = list(op.get("ids") or [])
        if not ids and op.get("count"):
            # Deterministic choice: the oldest-updated records, so tests can predict page positions.
            ids = [
                r[0]
                for r in conn.execute(
                    f"SELECT id FROM {t} ORDER BY updatedDate, id LIMIT ?",
                    (int(op["count"]),),
                )
            ]
        if kind == "update":
            values = {spec.by_lower.get(k.lower(), k): v for k, v in (op.get("set") or {}).items()}
            stored = {k: self._stored(spec, k, v) for k, v in values.items()}
            stored.setdefault("updatedDate", second)
            assign = ", ".join(f"{k} = ?" for k in stored)
            for chunk in range(0, len(ids), 500):
                part = ids[chunk : chunk + 500]
                conn.execute(
                    f"UPDATE {t} SET {assign} WHERE id IN ({','.join('?' * len(part))})",
                    [*stored.values(), *part],
                )
        elif kind == "delete":
            for chunk in range(0, len(ids), 500):
                part = ids[chunk : chunk + 500]
                conn.execute(f"DELETE FROM {t} WHERE id IN ({','.join('?' * len(part))})", part)
        else:
            raise ApiError(
                400,
                50000020,
                f"Unknown mutation {kind!r}; use create, update or delete",
            )
        return {
            "op": kind,
            "object": obj,
            "ids": ids,
            "updatedDate": self.clock.render(second),
        }

    def set_transferred(self, obj: str, key: str, value: str, bump: bool) -> str | None:
        """Set transferredToAccounting on one document by id (or number); returns its id."""
        spec = OBJECTS[obj]
        with self.write_lock:
            conn = self.conn()
            cond = "id = ?" + (f" OR {spec.number_field} = ?" if spec.number_field else "")
            row = conn.execute(
                f"SELECT id FROM {spec.table} WHERE {cond}",
                [key, key] if spec.number_field else [key],
            ).fetchone()
            if row is None:
                return None
            extra = ", updatedDate = ?" if bump else ""
            args = [value, int(time.time())] if bump else [value]
            conn.execute(
                f"UPDATE {spec.table} SET transferredToAccounting = ?{extra} WHERE id = ?",
                [*args, row[0]],
            )
            conn.commit()
            return row[0]

    def read_only(self) -> sqlite3.Connection:
        """A connection that cannot write: Data Query runs caller SQL on it."""
        return sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
