"""The Airflow Variables and connections this project reads, each with the description the Airflow UI
shows beside it (Admin > Variables, Admin > Connections).

A watermark Variable gets its description when a sync writes it. The others are described by
`python -m zuora_etl.airflow_objects` (run once in a deployment, e.g. from the image's start script):
it sets the descriptions of those that exist without one, and with `--create-defaults` creates the
tunable ones at their defaults so that they are found in the UI. A value is never changed."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from . import settings
from .alerts.channels import SLACK_CONN_ID, SMTP_CONN_ID, WEBHOOK_CONN_ID
from .windows import hwm_variable


@dataclass(frozen=True)
class Described:
    name: str
    description: str
    default: str | None = None  # a Variable's value when unset (None: no value, see the description)


CONNECTIONS = [
    Described(
        settings.ZUORA_CONN_ID,
        "Zuora REST API: host = base URL, login = OAuth client id, password = client "
        "secret; extra: entity_id, zuora_version, page_size, max_in_flight, timezone",
    ),
    Described(
        settings.SINK_CONNECTIONS["crm"],
        "Target of the zuora_crm_* families: any SQL connection, or http for the CRM's REST API",
    ),
    Described(
        settings.SINK_CONNECTIONS["erp"],
        "Target of the zuora_erp_* families: any SQL connection, or http "
        "for the ERP's REST API (include/endpoints/*.yaml)",
    ),
    Described(
        settings.STATE_CONN_ID,
        "The Zuora ETL state database: sync ledger, dead letters, runs, reconciliation and sizing results",
    ),
    Described(WEBHOOK_CONN_ID, "Alert channel: a JSON POST per alert to host (+ endpoint in extra)"),
    Described(SLACK_CONN_ID, "Alert channel: a Slack incoming webhook (the webhook URL)"),
    Described(SMTP_CONN_ID, "Alert channel: e-mail through this SMTP server; extra `to`: list of addresses"),
]

VARIABLES = [
    Described(
        settings.STAGING_ROOT_VARIABLE,
        "Where runs stage Parquet parts (any ObjectStoragePath, e.g. "
        "s3://bucket/zuora); unset: $AIRFLOW_HOME/zuora_staging",
    ),
    Described(
        settings.SETTLE_VARIABLE,
        "Seconds behind now where every family's windows end (overrides the families' settle_seconds)",
    ),
    Described(
        settings.INITIAL_WATERMARK_VARIABLE,
        "Where a family with no watermark starts reading (ISO-8601); unset: the whole history",
    ),
    Described(
        settings.REPLAY_APPROVAL_VARIABLE,
        "A replay of more records than this waits for approval in the UI",
        str(settings.REPLAY_APPROVAL_THRESHOLD),
    ),
    Described(
        settings.REPORTS_ROOT_VARIABLE,
        "Where reconciliation and sizing reports are written (any "
        "ObjectStoragePath); unset: $AIRFLOW_HOME/zuora_reports",
    ),
    Described(
        settings.RECONCILIATION_ALERT_VARIABLE,
        "Reconciliation differences above this fail the run (and alert)",
        str(settings.RECONCILIATION_ALERT_THRESHOLD),
    ),
    Described(
        settings.ALERT_DEAD_LETTERS_VARIABLE,
        "zuora_watch alerts when one object has more open dead letters than this",
        str(settings.ALERT_DEAD_LETTERS_THRESHOLD),
    ),
    Described(
        settings.ALERT_WATERMARK_LAG_VARIABLE,
        "zuora_watch alerts when an object's data is older than this many minutes",
        str(int(settings.ALERT_WATERMARK_LAG.total_seconds() // 60)),
    ),
    Described(
        settings.ALERT_REALERT_VARIABLE,
        "zuora_watch repeats a lasting alert every this many minutes",
        str(int(settings.ALERT_REALERT_INTERVAL.total_seconds() // 60)),
    ),
]


def watermark_description(family: str, obj: str) -> str:
    return (
        f"High-water mark of {obj} in the {family} family: the newest updatedDate its last committed sync "
        f"loaded. The next sync reads from here (minus the overlap). Delete it to read the whole history again."
    )


def variable_description(key: str) -> str | None:
    """The description of one of the project's Variables (a watermark's from its name)."""
    for v in VARIABLES:
        if v.name == key:
            return v.description
    prefix, _, rest = key.partition("__")
    family, _, obj = rest.partition("__")
    if prefix == "zuora_hwm" and family and obj and hwm_variable(family, obj) == key:
        return watermark_description(family, obj)
    return None


def connection_description(conn_id: str) -> str | None:
    return next((c.description for c in CONNECTIONS if c.name == conn_id), None)


def describe(create_defaults: bool = False) -> list[str]:
    """Set the descriptions of the project's Variables and connections in Airflow's metadata
    database where they have none (and create the tunable Variables at their defaults if asked);
    returns what changed."""
    from airflow.models import Connection, Variable
    from airflow.utils.session import create_session

    changed: list[str] = []
    with create_session() as session:
        for var in session.query(Variable).filter(Variable.key.like("zuora_%")):
            text = variable_description(var.key)
            if text and not var.description:
                var.description = text
                changed.append(f"variable {var.key}: described")
        for conn in session.query(Connection).filter(Connection.conn_id.in_([c.name for c in CONNECTIONS])):
            if not conn.description:
                conn.description = connection_description(conn.conn_id)
                changed.append(f"connection {conn.conn_id}: described")
        if create_defaults:
            existing = {k for (k,) in session.query(Variable.key).filter(Variable.key.like("zuora_%"))}
            for v in VARIABLES:
                if v.default is not None and v.name not in existing:
                    session.add(Variable(key=v.name, val=v.default, description=v.description))
                    changed.append(f"variable {v.name}: created at its default {v.default}")
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--create-defaults", action="store_true", help="create the tunable Variables at their defaults")
    args = parser.parse_args(argv)
    changed = describe(args.create_defaults)
    print("\n".join(changed) or "every Variable and connection of the project already has its description")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
