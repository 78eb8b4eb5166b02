"""Pieces every contestant of the harness shares: paths, memory readings, the emulator's token."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[1]
# The emulator's demo credentials (include/zuora_emulator); the bench tenant is local and throwaway.
CLIENT_ID, CLIENT_SECRET = "demo-client", "demo-secret"
# Zuora's largest Object Query page; every contestant reads with it.
PAGE_SIZE = 99
# Zuora requires a filter on some objects (invoice items); this one keeps every record, as a first
# load from no watermark does.
EVERYTHING_FILTER = "updatedDate.GE:1970-01-01T00:00:00+00:00"
FAMILY = "crm_invoices"
DAG_ID = "zuora_crm_invoices"
# The family's objects: (catalog name, Object Query endpoint); also the target table names.
OBJECTS = (("invoices", "invoices"), ("invoice_items", "invoice-items"))


def project_paths() -> None:
    """Make the project (include/, scripts/, tests/) and its plugins importable, as Airflow does."""
    for path in (str(ROOT / "plugins"), str(ROOT)):
        if path not in sys.path:
            sys.path.insert(0, path)


def proc_status_mib(key: str) -> float | None:
    """A memory line of /proc/self/status (VmRSS, VmHWM) in MiB; None where /proc is missing."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the process's VmHWM to its current RSS (Linux >= 4.0): the next VmHWM reading is the
    peak since this call, with no sampling gap. False where the kernel refuses it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def max_rss_mib() -> float:
    """Peak RSS of this process in MiB: VmHWM, which starts afresh at exec. (getrusage's ru_maxrss
    would not do: Linux carries it over exec from the forking parent, here the harness.)"""
    hwm = proc_status_mib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def fetch_token(base_url: str, session: requests.Session | None = None) -> str:
    """An OAuth token of the emulated tenant (never printed)."""
    http = session or requests
    r = http.post(
        f"{base_url}/oauth/token",
        data={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "grant_type": "client_credentials"},
        timeout=30,
    )
    r.raise_for_status()
    return r.json()["access_token"]


def family_fields() -> dict[str, list[str]]:
    """The fields the pipeline's extract requests per object, so every contestant reads the same."""
    project_paths()
    from zuora_etl.families import get_family
    from zuora_etl.mapping import cached_mapping
    from zuora_etl.pipeline import extraction_fields

    family = get_family(FAMILY)
    out = {}
    for o in family.objects:
        extra = [o.parent.key] if o.parent and getattr(o.parent, "key", None) else []
        out[o.name] = extraction_fields(cached_mapping(o.mapping or o.name), extra)
    return out


def target_counts(run_id: str) -> dict[str, dict[str, Any]]:
    """Records in each target table (connection zuora_crm_sink), and the run's own figures per object
    from the pipeline's state store (rows extracted and loaded, API calls, seconds). Needs the
    connections in this process's environment (AIRFLOW_CONN_*)."""
    project_paths()
    import sqlalchemy as sa
    from zuora_etl.db import engine_for
    from zuora_etl.state import StateStore

    objects: dict[str, dict[str, Any]] = {}
    with engine_for("zuora_crm_sink").connect() as conn:
        for name, _ in OBJECTS:
            objects[name] = {"records": conn.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar_one()}
    for row in StateStore().runs(family=FAMILY, limit=50):
        if row["run_id"] == run_id and row["object"] in objects:
            objects[row["object"]].update(
                rows_extracted=row["rows_extracted"],
                rows_loaded=row["rows_loaded"],
                api_calls=row["api_calls"],
                seconds=row["seconds"],
            )
    return objects


def write_result(path: Path, result: dict[str, Any]) -> None:
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
