"""The `zuora` connection type, registered with Airflow as a small provider (entry point
`apache_airflow_provider` in pyproject.toml).

Airflow 3.3 builds connection forms from the provider info itself, without importing the hook:
`ui-field-behaviour` hides, relabels and fills placeholders of the standard fields, `conn-fields`
adds fields stored in the connection's extra (a JSON-schema per field; `enum` makes a drop-down,
`values_display` its labels). The older `get_connection_form_widgets` / `get_ui_field_behaviour`
hook methods are deprecated since Airflow 3.2 (see `ProvidersManager._load_ui_metadata`).

The form keeps the fields of an `http` connection (host = REST base URL, login = client id,
password = client secret, extra `entity_id`), so both types stay interchangeable; the data center
is a drop-down of Zuora's REST base URLs, used when host is empty. A free URL (the local emulator, a
proxy) goes in host. The base URL stays a standard field on purpose: Airflow's Test button reuses a
stored secret only for the stored host and port, so a changed free URL cannot receive the secret;
the drop-down only ever points at Zuora.

This module is loaded by every Airflow process that discovers providers: keep it free of imports.
"""

from __future__ import annotations

from typing import Any

CONN_TYPE = "zuora"
PACKAGE_NAME = "zuora-etl"  # the distribution name in pyproject.toml; Airflow checks they match
VERSION = "0.1.0"

# Zuora's REST base URLs (ZUORA_API.md, "Authentication and base URLs"), in the drop-down's order.
DATA_CENTERS: dict[str, str] = {
    "https://rest.na.zuora.com": "US production (rest.na.zuora.com)",
    "https://rest.zuora.com": "US production, older host (rest.zuora.com)",
    "https://rest.sandbox.na.zuora.com": "US API sandbox (rest.sandbox.na.zuora.com)",
    "https://rest.apisandbox.zuora.com": "US API sandbox, older host (rest.apisandbox.zuora.com)",
    "https://rest.test.zuora.com": "US developer and central sandbox (rest.test.zuora.com)",
    "https://rest.eu.zuora.com": "EU production (rest.eu.zuora.com)",
    "https://rest.sandbox.eu.zuora.com": "EU API sandbox (rest.sandbox.eu.zuora.com)",
    "https://rest.test.eu.zuora.com": "EU developer and central sandbox (rest.test.eu.zuora.com)",
    "https://rest.ap.zuora.com": "APAC production (rest.ap.zuora.com)",
    "https://rest.test.ap.zuora.com": "APAC developer and central sandbox (rest.test.ap.zuora.com)",
}

CONNECTION_TYPE: dict[str, Any] = {
    "connection-type": CONN_TYPE,
    "hook-class-name": "zuora_etl.hooks.zuora.ZuoraHook",
    "hook-name": "Zuora",
    "ui-field-behaviour": {
        "hidden-fields": ["schema", "port"],
        "relabeling": {
            "host": "REST base URL (custom)",
            "login": "Client ID",
            "password": "Client secret",
        },
        "placeholders": {
            "host": "empty: the data center below; or any URL, e.g. http://127.0.0.1:8780 (local emulator)",
            "login": "OAuth client id",
            "password": "OAuth client secret",
        },
    },
    "conn-fields": {
        "data_center": {
            "label": "Data center",
            "description": "Zuora's REST base URL for the tenant; used when 'REST base URL (custom)' is empty.",
            "schema": {
                "type": ["string", "null"],
                "enum": [None, *DATA_CENTERS],
                "values_display": {"null": "(custom URL in host)", **DATA_CENTERS},
            },
        },
        "entity_id": {
            "label": "Entity ID",
            "description": "Multi-entity tenants: sent as the Zuora-Entity-Ids header. Leave empty otherwise.",
            "schema": {"type": ["string", "null"]},
        },
    },
}


def get_provider_info() -> dict[str, Any]:
    """Provider info for Airflow's providers manager (schema: airflow/provider_info.schema.json)."""
    return {
        "package-name": PACKAGE_NAME,
        "name": "Zuora ETL",
        "description": "Zuora Billing connection type (`zuora`) for the Zuora CRM/ERP sync DAGs.",
        "versions": [VERSION],
        "connection-types": [CONNECTION_TYPE],
    }
