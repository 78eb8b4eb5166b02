"""### zuora_sizing

Monthly sizing of the sync, measured with Zuora's Data Query (the logic: `zuora_etl.sizing` and
`zuora_etl.sizing_report`; this docstring is the DAG's documentation):

1. **count_by_month**: records per created month since January of last year, one SQL per Data Query
   table (`include/sql/<table>.sql`), kept in the state table `zuora_etl_sizing`;
2. **count_busiest_month_by_day**: the busiest month (by Zuora's transfer formula) counted by created
   day, for the first-of-month peak;
3. **measure_export_size**: each table's full-field export of its busiest month, its CSV size;
4. **write_report**: transfer estimate, peak, forecast with compound growth (settings
   `FORECAST_MONTHS`: 24 months), storage, and API calls per day against the tenant's limit (param
   `daily_api_limit`, else told by Zuora's RateLimit-Limit header); `report.html`, CSVs and
   `chart.png` under the reports root (Variable `zuora_etl_reports_root`), `sizing/<run_id>/`.

Zuora runs only a few Data Query jobs per tenant: each task runs its jobs on a thread pool of
`DATA_QUERY_MAX_JOBS` (3), the tasks run one after another, and one run at a time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG, Param, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException

from .dag_defaults import deadline_alerts, default_args
from .dag_factory import START_DATE
from .errors import fail_fast
from .families import usable_families
from .hooks.zuora import ZuoraHook
from .reports import report_dir
from .settings import FORECAST_MONTHS, SIZING_DAG_ID
from .sizing import (
    DaysManifest,
    ExportsManifest,
    MonthlyManifest,
    family_reads,
    load_counts,
    measure_days,
    measure_exports,
    measure_months,
    state_engine,
)
from .sizing_report import ReportManifest, estimate, write_report

DAG_ID = SIZING_DAG_ID
# A Data Query batch waits on Zuora for minutes, not on a worker: a retry after a short pause rides out
# a busy tenant; a failed query (wrong SQL or table) is not retried (AirflowFailException).
RETRY_DELAY = timedelta(minutes=5)


@task(task_id="count_by_month")
def count_by_month() -> MonthlyManifest:
    """Every table's sizing SQL (include/sql/<table>.sql) through Data Query, at most
    DATA_QUERY_MAX_JOBS jobs at once; the counts replace this run's rows in `zuora_etl_sizing`."""
    run_id = get_current_context()["run_id"]
    try:
        with fail_fast():
            hook = ZuoraHook(track_prefix=f"{DAG_ID}.month")
            return measure_months(hook, state_engine(), run_id, datetime.now(UTC))
    except ValueError as exc:  # a misnamed SQL file: fix include/sql/, no retry helps
        raise AirflowFailException(str(exc)) from None


@task(task_id="count_busiest_month_by_day")
def count_by_day(months: MonthlyManifest) -> DaysManifest:
    """Records per created day of the busiest month (by the transfer formula): the first-of-month peak."""
    with fail_fast():
        return measure_days(ZuoraHook(track_prefix=f"{DAG_ID}.day"), months)


@task(task_id="measure_export_size")
def measure_export_size(months: MonthlyManifest) -> ExportsManifest:
    """Each table's full-field CSV export of its busiest month, downloaded as a stream and counted."""
    with fail_fast():
        return measure_exports(ZuoraHook(track_prefix=f"{DAG_ID}.export"), months)


@task(task_id="write_report")
def report(months: MonthlyManifest, days: DaysManifest, exports: ExportsManifest) -> ReportManifest:
    """Estimates (transfer, peak, forecast, storage, API calls against the tenant's limit) and
    the files: report.html, CSVs and chart.png under the reports root's sizing/<run_id>/."""
    ctx = get_current_context()
    limit = ctx["params"].get("daily_api_limit")
    counts = load_counts(state_engine(), months["run_id"])
    families, _ = usable_families()
    sizing = estimate(counts, months, days, exports, family_reads(families), FORECAST_MONTHS,
                      int(limit) if limit else None)  # fmt: skip
    return write_report(sizing, report_dir("sizing", months["run_id"]))


def build_sizing_dag() -> DAG:
    with DAG(
        dag_id=DAG_ID,
        description="Monthly sizing: Data Query counts by created month, transfer, storage and API-call forecast",
        doc_md=__doc__,
        schedule="@monthly",
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,  # two runs would double the Data Query jobs running on the tenant
        tags=["zuora", "sizing", "reports"],
        default_args=default_args("data-integration", 1, RETRY_DELAY),
        deadline=deadline_alerts(DAG_ID),
        params={
            "daily_api_limit": Param(
                None,
                type=["null", "integer"],
                minimum=1,
                title="Daily API limit",
                description="The tenant's API calls per day; empty: told by Zuora's RateLimit-Limit header "
                "(an API sandbox allows 10,000, a developer sandbox 50,000, production 27M).",
            )
        },
    ) as dag:
        months = count_by_month()
        days = count_by_day(months)
        exports = measure_export_size(months)
        days >> exports  # one batch of jobs at a time: each already runs DATA_QUERY_MAX_JOBS at once
        report(months, days, exports)
    return dag
