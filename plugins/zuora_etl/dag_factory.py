"""Builds one sync DAG from a family model: plan -> per object chain (chain.py) -> finish (the
watermarks, the report, staging and the sync lease)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pendulum
from airflow.sdk import DAG, TaskGroup, Variable, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from airflow.timetables.interval import CronDataIntervalTimetable

from .airflow_objects import variable_description
from .catalog import get_object
from .chain import ObjectChain, Parent, check_mappings, object_chain
from .dag_defaults import deadline_alerts, default_args
from .errors import fail_fast
from .families import Family, FamilyObject, get_family
from .liveness import run_alive
from .manifests import ObjectResults, RunPlan, RunRow, WindowDict
from .mapping import cached_mapping
from .params import sync_params
from .planning import Counted, advance_watermarks, backfill_block, plan_run, slice_groups
from .settings import BULK_MIN_RECORDS, STATE_CONN_ID, SYNC_MAX_ACTIVE_RUNS
from .state import StateStore
from .windows import Window, parse_instant

# The library's heavy modules (pandas, pyarrow, the HTTP provider: about a second of imports) are
# imported inside the tasks that use them: every task process parses its DAG file before it runs,
# and the DAG processor parses every file often, so the file itself stays light
# (tests/dags/test_parse_cost.py holds every DAG file to it).

log = logging.getLogger(__name__)
# Answers to a Data Query call that mean the feature is off for the tenant or the user: the plan does
# without a count instead of failing.
DATA_QUERY_UNAVAILABLE = frozenset({400, 403, 404})
START_DATE = datetime(2025, 1, 1, tzinfo=UTC)


def _doc(family: Family) -> str:
    """The DAG's docs panel: what it syncs, a four-column table of its objects, params and Variables
    (narrow enough for Airflow's docs panel, no repeated title)."""
    rows = "\n".join(
        f"| `{o.name}` | {_reads(o)} | {_selection(o)} | `{cached_mapping(o.mapping_name).table}`"
        f"{' (flagged in Zuora)' if o.mark_transferred else ''} |"
        for o in family.objects
    )
    return f"""{" ".join(family.description.split())}

| object | read | selection | target table |
| --- | --- | --- | --- |
{rows}

- **Connections**: target `{family.sink}` (SQL, or a REST API when of type `http`), Zuora `zuora_default`,
  state `{STATE_CONN_ID}`.
- **Schedule**: `{family.schedule or "manual"}`; settle lag {family.settle_seconds} s (Variable
  `zuora_etl_settle_seconds` overrides it), overlap {family.overlap_seconds} s below the watermark.
- **Watermarks**: Variables `zuora_hwm__{family.family}__<object>`.
- **Params**: `start` / `end` (ISO date or datetime) read that range and leave the watermarks alone;
  `dry_run` reports what loading would change and writes nothing; `slices` splits each window into
  that many parallel extracts; `bulk` (auto, always, never) reads a first load or a long backfill
  by Data Query export (auto: when Zuora counts at least {BULK_MIN_RECORDS:,} records in it).
- A record outside its selection is skipped, or canceled in the target if it was delivered before.
  Anything left behind (quarantined, refused, held) waits in `zuora_etl_dead_letters`, fails the
  run, and is read again by the next run.
"""


def _reads(o: FamilyObject) -> str:
    return f"items of the {o.parent.object} read (`{o.parent.key}`)" if o.parent else "by updatedDate"


def _selection(o: FamilyObject) -> str:
    parts = [f"`{f}`" for f in o.filters] + [f"delivers if `{c}`" for c in o.deliver_if]
    return ", ".join(parts) or "all"


def sync_dag(name: str) -> DAG:
    """The sync DAG of family `name` (include/families/<name>.yaml). A family or mapping file that
    does not validate raises here, naming the file and the fix: the DAG file that asked shows it as
    its import error and the other families' DAGs keep running."""
    family = get_family(name)
    check_mappings(family)
    return build_sync_dag(family)


def build_sync_dag(family: Family) -> DAG:
    with DAG(
        dag_id=family.dag_id,
        description=" ".join(family.description.split()),
        doc_md=_doc(family),
        schedule=CronDataIntervalTimetable(family.schedule, timezone="UTC") if family.schedule else None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=SYNC_MAX_ACTIVE_RUNS,
        tags=sorted({"zuora", family.target, *family.tags}),
        default_args=default_args(family.owner, family.retries, timedelta(minutes=family.retry_delay_minutes)),
        deadline=deadline_alerts(family.dag_id),
        params=sync_params(),
    ) as dag:
        run_plan = plan_task(family)
        chains: dict[str, ObjectChain] = {}
        for o in family.objects:
            with TaskGroup(group_id=o.name):
                parent = Parent(chains[o.parent.object], o.parent.key) if o.parent else None
                slices = None if o.parent else slices_task(o.name)(run_plan)
                chains[o.name] = object_chain(family, o, run_plan, slices=slices, parent=parent)
        # Every step's result is an input of `finish`: it starts when the last chain ends, whatever its state.
        finish_task(family)(run_plan, {n: c.results() for n, c in chains.items()})
    return dag


def plan_task(family: Family):
    @task.short_circuit(task_id="plan", ignore_downstream_trigger_rules=True)
    def plan() -> RunPlan | None:
        """Each object's windows (from its watermark, or the range asked for) and slices."""
        from .staging import run_dir, staging_root

        ctx = get_current_context()
        dag_run, run_id = ctx["dag_run"], ctx["run_id"]
        state = StateStore()
        try:
            run_plan = plan_run(
                family, dict(ctx["params"]), str(getattr(dag_run.run_type, "value", dag_run.run_type)),
                (ctx.get("data_interval_start"), ctx.get("data_interval_end")), datetime.now(UTC),
                lambda name: Variable.get(name, default=None),
                run_id=run_id, staging_dir=str(run_dir(staging_root(), family.family, run_id)),
                density=lambda obj: state.recent_density(family.family, obj),
                chosen_interval=chose_interval(ctx), backfill_end=lambda: chain_end(ctx, family),
                probe=lambda obj, window: probe(family, obj, window),
                count=lambda obj, window: count(family, obj, window),
            )  # fmt: skip
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None  # a bad param: no retry can fix it
        if run_plan["mode"] == "sync":
            holder = state.take_sync_lease(family.family, run_id, run_alive(ctx["ti"], [family.dag_id], run_id))
            if holder:
                # Two syncs never overlap (max_active_runs leaves room for backfills and dry runs).
                log.info("Sync %s of %s is still running; this run skips, the next reads on from the watermark",
                         holder, family.family)  # fmt: skip
                return None
        if run_plan["mode"] == "covered":
            # A follower of an Airflow backfill: its leader reads this interval. Returning nothing
            # skips every task after this one at once (the run stays green, costs one task).
            log.info("%s; skipping this run's chains", run_plan.get("backfill"))
            return None
        return run_plan

    return plan()


def slices_task(name: str):
    @task(task_id="slices")
    def slices(run_plan: RunPlan) -> list[list[WindowDict]]:
        """The object's time slices in groups dealt round-robin, one mapped extract each, which reads
        its group's slices in threads (one extract reading nothing when the window is empty, so the
        chain still reports)."""
        return slice_groups(run_plan["objects"][name])

    return slices


def probe(family: Family, name: str, window: Window) -> tuple[datetime | None, float | None]:
    """The expected volume of a long window with no history to go by, asked of Zuora."""
    from .hooks.zuora import ZuoraHook
    from .pipeline import probe_volume

    with fail_fast():
        hook = ZuoraHook(track_prefix=f"{family.dag_id}.plan")
        return probe_volume(hook, get_object(name), family.get(name).filters, window)


def count(family: Family, name: str, window: Window) -> Counted | None:
    """Zuora's Data Query count of a long window: the object and its children in the family. None
    where Data Query is not available to the connection (the probe then sizes the slices, and the
    window is read by Object Query)."""
    from .bulk import count_window
    from .hooks.zuora import DataQueryError, ZuoraApiError, ZuoraHook

    children = [(get_object(o.name), o.parent.key, o.filters) for o in family.objects
                if o.parent and o.parent.object == name]  # fmt: skip
    with fail_fast():
        hook = ZuoraHook(track_prefix=f"{family.dag_id}.plan")
        try:
            records, total, first, minutes = count_window(
                hook, get_object(name), family.get(name).filters, window, children
            )
        except DataQueryError as exc:
            log.warning("Data Query could not count %s (%s); sizing the window with one Object Query page", name, exc)
            return None
        except ZuoraApiError as exc:
            if exc.status not in DATA_QUERY_UNAVAILABLE:
                raise
            log.warning("Data Query is not available (%s); sizing the window with one Object Query page", exc)
            return None
    log.info("Zuora counts %d %s (%d with their children) in [%s, %s)", records, name, total,
             window.lo or "the beginning", window.hi)  # fmt: skip
    return Counted(records, total, first, minutes)


def chain_end(ctx, family: Family) -> datetime | None:
    """Where the chain of backfill runs this run starts ends (None: an earlier run reads it)."""
    ti, dag_id, state = ctx["ti"], ctx["dag"].dag_id, StateStore()
    start, end = ctx["data_interval_start"], ctx["data_interval_end"]
    chain = backfill_block(
        (start, end), family.schedule or "@hourly", lambda ids: ti.get_dr_count(dag_id=dag_id, run_ids=ids),
        lambda lo, hi: state.backfill_range_covers(family.family, lo, hi),
    )  # fmt: skip
    if chain is not None:  # this run leads: its range is what the followers skip
        state.record_backfill_range(family.family, ctx["run_id"], parse_instant(start), chain)
    return chain


def chose_interval(ctx) -> bool:
    """Whether a manual run was given its data interval in the trigger form (it then differs from
    the one Airflow infers for its logical date): that interval is a range to read."""
    dag_run, dag = ctx["dag_run"], ctx.get("dag")
    start, end, logical = ctx.get("data_interval_start"), ctx.get("data_interval_end"), dag_run.logical_date
    run_type = str(getattr(dag_run.run_type, "value", dag_run.run_type))
    if run_type != "manual" or not (start and end and logical) or dag is None:
        return False
    inferred = dag.timetable.infer_manual_data_interval(run_after=pendulum.instance(logical))
    return (inferred.start, inferred.end) != (pendulum.instance(start), pendulum.instance(end))


def finish_task(family: Family):
    @task(task_id="finish", trigger_rule="all_done")
    def finish_run(run_plan: RunPlan | None, results: dict[str, ObjectResults]) -> list[RunRow]:
        """Move each object's watermark to the newest updatedDate its committed load read (when
        every chain landed); one runs row per object; fail if anything did not land. Then remove
        this run's staging when everything landed, sweep old failed runs' staging, and hand the
        family's sync lease on."""
        from .summary import finish

        loads = {name: res.get("load") for name, res in results.items() if not family.get(name).parent}
        return finish(
            family.dag_id, family.family, get_current_context()["run_id"], run_plan, results,
            lambda: advance_watermarks(run_plan, loads, lambda n: Variable.get(n, default=None), set_watermark),
        )  # fmt: skip

    return finish_run


def set_watermark(key: str, value: str) -> None:
    """Write a watermark Variable with the description the UI shows beside it."""
    Variable.set(key, value, description=variable_description(key))


__all__ = ["START_DATE", "build_sync_dag", "sync_dag"]
