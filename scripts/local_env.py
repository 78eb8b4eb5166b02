"""Point Airflow at a local emulator and local SQLite files, through environment variables only:
`AIRFLOW_CONN_*` and `AIRFLOW_VAR_*`, the same names a deployment sets in its secrets backend."""

from __future__ import annotations

import json
import os
from pathlib import Path

from zuora_etl.airflow_objects import connection_description

CONNECTIONS = {"zuora_crm_sink": "crm.db", "zuora_erp_sink": "erp.db", "zuora_etl_state": "state.db"}


def local_connections(zuora_url: str, data_dir: Path, zuora_extra: dict | None = None) -> dict[str, str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {
        "AIRFLOW_CONN_ZUORA_DEFAULT": json.dumps({
            "conn_type": "http", "host": zuora_url, "login": "demo-client", "password": "demo-secret",
            "extra": zuora_extra or {}, "description": connection_description("zuora_default"),
        }),
        "AIRFLOW_VAR_ZUORA_ETL_STAGING_ROOT": f"file://{data_dir / 'staging'}",
    }  # fmt: skip
    for conn_id, filename in CONNECTIONS.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
            {"conn_type": "sqlite", "host": str(data_dir / filename), "description": connection_description(conn_id)}
        )
    return env


def apply(env: dict[str, str]) -> None:
    os.environ.update(env)
