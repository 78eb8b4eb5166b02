"""dlt's contestant: a `rest_api` source (OAuth2 client credentials on /oauth/token, a cursor
paginator on `nextPage`) reading the same fields as the pipeline into the same database: dlt's
sqlalchemy destination for SQLite, its postgres destination for PostgreSQL. Merge on `id`, as the
pipeline upserts. Run by the harness in its own process:

    python -m bench.contestant_dlt --zuora-url URL --db sqlite:///path|postgresql://... --out result.json \
        --workdir DIR
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from bench.common import (
    CLIENT_ID,
    CLIENT_SECRET,
    EVERYTHING_FILTER,
    OBJECTS,
    PAGE_SIZE,
    family_fields,
    max_rss_mib,
    write_result,
)

DATASET = "dlt_bench"
TRUST_AUTH_PLACEHOLDER = "unused-trust-auth"  # see _with_password


def source_config(base: str, fields: dict[str, list[str]]) -> dict[str, Any]:
    return {
        "client": {
            "base_url": base,
            "auth": {
                "type": "oauth2_client_credentials",
                "access_token_url": f"{base}/oauth/token",
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
            },
            "paginator": {"type": "cursor", "cursor_path": "nextPage", "cursor_param": "cursor"},
        },
        "resource_defaults": {
            "primary_key": "id",
            "write_disposition": "merge",
            "endpoint": {"data_selector": "data"},
        },
        "resources": [
            {
                "name": name,
                "endpoint": {
                    "path": f"object-query/{endpoint}",
                    "params": {
                        "pageSize": PAGE_SIZE,
                        "sort[]": "updatedDate.ASC",
                        "filter[]": EVERYTHING_FILTER,
                        "fields[]": ",".join(fields[name]),
                    },
                },
            }
            for name, endpoint in OBJECTS
        ],
    }


def _with_password(dsn: str) -> str:
    """dlt's postgres credentials require a password; the bench server trusts local connections and
    ignores it, so a DSN without one gets a placeholder (never a real secret, never printed)."""
    parts = urlsplit(dsn)
    if parts.password is not None or not parts.username:
        return dsn
    netloc = f"{parts.username}:{TRUST_AUTH_PLACEHOLDER}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def run(base: str, db: str, workdir: Path, fields: dict[str, list[str]] | None = None) -> dict[str, Any]:
    # dlt reads its settings from the environment: no telemetry, quiet logs, state under workdir.
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    # dlt reads Airflow Variables as a config provider when Airflow is importable; the bench gives
    # everything explicitly, and there is no Airflow metadata DB in this process.
    os.environ.setdefault("PROVIDERS__ENABLE_AIRFLOW_SECRETS", "false")
    import dlt
    from dlt.sources.rest_api import rest_api_source

    fields = fields or family_fields()
    if db.startswith("sqlite:///"):
        destination = dlt.destinations.sqlalchemy(credentials=db)
    else:
        destination = dlt.destinations.postgres(credentials=_with_password(db))
    pipeline = dlt.pipeline(
        pipeline_name="zuora_bench",
        destination=destination,
        dataset_name=DATASET,
        pipelines_dir=str(workdir / "dlt-pipelines"),
    )
    started = time.perf_counter()
    info = pipeline.run(rest_api_source(source_config(base, fields)))
    wall = time.perf_counter() - started
    info.raise_on_failed_jobs()
    counts = pipeline.last_trace.last_normalize_info.row_counts if pipeline.last_trace else {}
    objects = {name: {"records": int(counts.get(name, 0))} for name, _ in OBJECTS}
    steps = {}
    for step in pipeline.last_trace.steps if pipeline.last_trace else []:
        if step.finished_at and step.started_at:
            steps[step.step] = round((step.finished_at - step.started_at).total_seconds(), 3)
    return {
        "contestant": "dlt",
        "state": "success",
        "wall_seconds": round(wall, 3),
        "records": sum(o["records"] for o in objects.values()),
        "objects": objects,
        "steps_seconds": steps,
        "dlt_version": dlt.__version__,
        "peak_rss_mib": round(max_rss_mib(), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--zuora-url", required=True)
    parser.add_argument("--db", required=True, help="sqlite:///absolute/path or a postgresql:// DSN")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--fields", type=json.loads, help="JSON {object: [fields]}; default: the family's (imports Airflow)"
    )
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    write_result(args.out, run(args.zuora_url, args.db, args.workdir, args.fields))


if __name__ == "__main__":
    main()
