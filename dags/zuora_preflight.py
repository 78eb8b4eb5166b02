"""zuora_preflight: can every family be read from this Zuora tenant, as configured?

Run it by hand before the first real sync, and after changing a connection, a family or a mapping.
One task; it loads nothing into any target and changes nothing in Zuora:

1. **Connection**: a fresh OAuth token through `ZuoraHook` (a wrong client id or secret fails here,
   with the reason and never the secret).
2. **Every family and object**: ONE record (`pageSize=1`) with exactly the fields and filters the
   sync will send. A refusal is narrowed down with a few more calls: `not enabled` (the tenant
   refuses the object, e.g. Orders or Invoice Settlement switched off), `missing custom fields`
   (`*__c` fields the tenant lacks), `refused` (invalid fields or filters, named), `mapping invalid`
   (a mapping file that does not validate).
3. **Rate limit**: the tenant's limits from Zuora's `RateLimit-*` / `Concurrency-Limit-*` headers
   against the calls the families' schedules need per day.

The table is in the task log. The run fails with a summary when any row is not `ok` or the
schedules need more calls a day than the tenant allows. The same check from a shell:
`python -m zuora_etl.preflight [--conn-id ID] [--families-dir DIR]`.

**Params**: `zuora_conn_id` (default `zuora_default`): check another connection before switching.
"""

from datetime import UTC, datetime, timedelta

from airflow.sdk import Param, dag, get_current_context, task
from zuora_etl.dag_defaults import deadline_alerts, default_args
from zuora_etl.preflight import preflight_or_fail


@dag(
    dag_id="zuora_preflight",
    description="Checks the Zuora connection, every family's fields and filters, and the tenant's limits",
    doc_md=__doc__,
    schedule=None,
    start_date=datetime(2025, 1, 1, tzinfo=UTC),
    catchup=False,
    max_active_runs=1,
    tags=["zuora", "preflight"],
    default_args=default_args("data-integration", 0, timedelta(minutes=1)),
    deadline=deadline_alerts("zuora_preflight"),
    params={"zuora_conn_id": Param("zuora_default", type="string", description="Zuora connection to check")},
)
def zuora_preflight() -> None:
    @task(task_id="preflight")
    def run_preflight() -> dict:
        """Token, one record per family object, rate limit; fails with the summary on any problem."""
        conn_id = get_current_context()["params"]["zuora_conn_id"]
        return preflight_or_fail(conn_id, track_prefix="zuora_preflight")

    run_preflight()


zuora_preflight()
