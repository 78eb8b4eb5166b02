"""The raw limit: one keep-alive session pages every invoice and invoice item (pageSize 99, cursor),
then one bare bulk insert of the same rows (executemany on SQLite, COPY on PostgreSQL) per database.

No mapping, no validation, no staging, no ledger, no upsert: what reading and writing the same rows
costs at least with a single cursor. Run by the harness in its own process:

    python -m bench.contestant_raw --zuora-url URL --db sqlite:///path [--db postgresql://...] --out result.json
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import requests

from bench.common import EVERYTHING_FILTER, OBJECTS, PAGE_SIZE, family_fields, fetch_token, max_rss_mib, write_result


def page_all(session: requests.Session, base: str, endpoint: str, fields: list[str]) -> list[tuple]:
    """Every record of one object, oldest first, as tuples in `fields` order."""
    params = [
        ("pageSize", str(PAGE_SIZE)),
        ("sort[]", "updatedDate.ASC"),
        ("filter[]", EVERYTHING_FILTER),
        ("fields[]", ",".join(fields)),
    ]
    rows: list[tuple] = []
    cursor = None
    while True:
        page = params + ([("cursor", cursor)] if cursor else [])
        r = session.get(f"{base}/object-query/{endpoint}", params=page, timeout=120)
        if r.status_code == 401:  # the token's hour is over (1M items at 0.3 s take 75 min): a new one
            session.headers["Authorization"] = f"Bearer {fetch_token(base, session)}"
            r = session.get(f"{base}/object-query/{endpoint}", params=page, timeout=120)
        r.raise_for_status()
        body = r.json()
        rows.extend(tuple(_text(rec.get(f)) for f in fields) for rec in body["data"])
        cursor = body.get("nextPage")
        if not cursor:
            return rows


def _text(value: Any) -> str | None:
    """Every column is text in the raw tables: the limit converts nothing it can avoid."""
    return None if value is None else str(value)


def insert_sqlite(path: str, table: str, fields: list[str], rows: list[tuple]) -> None:
    conn = sqlite3.connect(path)
    try:
        cols = ", ".join(f'"{f}" TEXT' for f in fields)
        conn.execute(f'CREATE TABLE IF NOT EXISTS "{table}" ({cols})')
        names = ", ".join(f'"{f}"' for f in fields)
        with conn:
            conn.executemany(f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(fields))})', rows)
    finally:
        conn.close()


def insert_postgres(dsn: str, table: str, fields: list[str], rows: list[tuple]) -> None:
    import psycopg

    with psycopg.connect(dsn) as conn, conn.cursor() as cur:
        cols = ", ".join(f'"{f}" text' for f in fields)
        cur.execute(f'CREATE TABLE IF NOT EXISTS "{table}" ({cols})')
        names = ", ".join(f'"{f}"' for f in fields)
        with cur.copy(f'COPY "{table}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)


def run(base: str, dbs: list[str], fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """Page every object once; write each object's rows into every database (one bulk insert each), so
    one paging pass serves every sink and each sink's row adds its own write time to it."""
    fields = fields or family_fields()
    session = requests.Session()
    started = time.perf_counter()
    session.headers["Authorization"] = f"Bearer {fetch_token(base, session)}"
    objects: dict[str, dict[str, Any]] = {}
    read_s = time.perf_counter() - started
    writes = [{"db": _label(db), "write_seconds": 0.0, "objects": {}} for db in dbs]
    for name, endpoint in OBJECTS:
        t0 = time.perf_counter()
        rows = page_all(session, base, endpoint, fields[name])
        read = time.perf_counter() - t0
        read_s += read
        objects[name] = {"records": len(rows), "read_seconds": round(read, 3)}
        for db, out in zip(dbs, writes, strict=True):
            t1 = time.perf_counter()
            if db.startswith("sqlite:///"):
                insert_sqlite(db.removeprefix("sqlite:///"), f"raw_{name}", fields[name], rows)
            else:
                insert_postgres(db, f"raw_{name}", fields[name], rows)
            spent = time.perf_counter() - t1
            out["write_seconds"] += spent
            out["objects"][name] = round(spent, 3)
        del rows
    for out in writes:
        out["write_seconds"] = round(out["write_seconds"], 3)
    return {
        "contestant": "raw",
        "state": "success",
        "records": sum(o["records"] for o in objects.values()),
        "objects": objects,
        "read_seconds": round(read_s, 3),
        "writes": writes,
        "peak_rss_mib": round(max_rss_mib(), 1),
    }


def _label(db: str) -> str:
    return "sqlite" if db.startswith("sqlite:///") else "postgres"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--zuora-url", required=True)
    parser.add_argument(
        "--db", action="append", required=True, help="sqlite:///absolute/path or a postgresql:// DSN; repeatable"
    )
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--fields", type=json.loads, help="JSON {object: [fields]}; default: the family's (imports Airflow)"
    )
    args = parser.parse_args()
    write_result(args.out, run(args.zuora_url, args.db, args.fields))


if __name__ == "__main__":
    main()
