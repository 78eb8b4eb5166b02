"""The trigger forms: every param of the project's DAGs, with its type, form widget and help text.

Airflow renders each `Param` as a form field from its JSON schema (a `date-time` string as a date
picker, an `enum` as a drop-down, an array of strings as one value per line) and validates what is
typed against the schema when the run is triggered, from the form, the CLI or the REST API.
"""

from __future__ import annotations

from airflow.sdk import Param

from .catalog import OBJECTS
from .families import Family
from .settings import BULK_CHOICES

# An ISO-8601 date or datetime, as typed on the CLI or produced by the form's date picker; checked
# by a pattern because jsonschema checks the `date-time` format only with an optional package. The
# plan then parses it (a well-formed but impossible date such as 2026-02-30 fails the plan at once).
ISO_INSTANT = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$"


def _instant(description: str, title: str) -> Param:
    return Param(
        None, type=["null", "string"], format="date-time", pattern=ISO_INSTANT, title=title, description=description
    )


def sync_params() -> dict[str, Param]:
    return {
        "start": _instant(
            "Load this range instead of syncing from the watermark (a backfill: no watermark moves). "
            "ISO date or datetime in UTC, e.g. 2026-06-01.",
            "Backfill from",
        ),
        "end": _instant(
            "End of the range, exclusive; a bare date means through that day. Empty: up to now.", "Backfill until"
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Read and transform, then report per object how many records would be inserted, updated "
            "or left unchanged, with a sample of field-level differences. Writes nothing, flags nothing.",
        ),
        "slices": Param(
            None,
            type=["null", "integer"],
            minimum=1,
            maximum=16,
            title="Parallel slices",
            description="Split each window into this many time slices, extracted in parallel (mapped tasks). "
            "Empty: chosen by the expected volume.",
        ),
        "bulk": Param(
            "auto",
            type="string",
            enum=list(BULK_CHOICES),
            title="Bulk export (Data Query)",
            description="How a long window is read. auto: one Data Query export per object when a first load or a "
            "long backfill holds more records than the bulk threshold (a count asked of Zuora first), else "
            "Object Query; always: every window by export; never: Object Query only (the incremental path).",
        ),
    }


def replay_params(families: list[Family]) -> dict[str, Param]:
    names = sorted(f.family for f in families)
    objects = sorted({o.name for f in families for o in f.objects} & set(OBJECTS))
    return {
        "family": Param(
            names[0] if names else None,
            type="string",
            enum=names,
            title="Family",
            description="The family whose mapping, filters and target the records go through (its sync DAG "
            "is zuora_<family>).",
        ),
        "object": Param(
            "invoices",
            type="string",
            enum=objects,
            title="Object",
            description="The Zuora object of the ids; their child records (an invoice's items) come with them.",
        ),
        "ids": Param(
            [],
            type=["array", "null"],
            items={"type": "string"},
            title="Ids or numbers",
            description="Zuora ids (32 hex characters) or numbers (invoice, account, payment numbers...), one per "
            "line.",
        ),
        "dead_letters": Param(
            False,
            type="boolean",
            title="Every open dead letter",
            description="Also replay every record of this object that has an open dead letter in the family.",
        ),
        "dry_run": Param(
            False,
            type="boolean",
            title="Dry run",
            description="Read and transform, report what would change, write nothing.",
        ),
    }


def reconciliation_params(families: list[Family]) -> dict[str, Param]:
    names = sorted(f.family for f in families)
    return {
        "families": Param(
            names,
            type="array",
            items={"type": "string", "enum": names},
            examples=names,  # the form offers `examples` of an array as a multi-select
            uniqueItems=True,
            minItems=1,
            title="Families",
            description="The families to reconcile (each compared with its own target). Default: all.",
        ),
        "period_start": Param(
            None,
            type=["null", "string"],
            format="date",
            pattern=r"^\d{4}-\d{2}-\d{2}$",
            title="Period start",
            description="First day of the period (UTC), e.g. 2026-11-01: records whose updatedDate falls in the "
            "period are compared. Empty: the run's data interval (a scheduled run: the previous calendar month).",
        ),
        "period_end": Param(
            None,
            type=["null", "string"],
            format="date",
            pattern=r"^\d{4}-\d{2}-\d{2}$",
            title="Period end",
            description="Last day of the period, included, e.g. 2026-11-30. Empty with a start: up to now.",
        ),
        "repair": Param(
            False,
            type="boolean",
            title="Repair",
            description="Re-sync the missing, stale and mismatched records (the replay's chains, forced) and mark "
            "extras in the target (column zuora_deleted_at); the alert then counts only what is left.",
        ),
    }
