"""The reconciliation DAG: plan -> per family: compare each object -> (repair: the replay's chains,
forced -> finish) -> report (fails, which alerts, when differences exceed the threshold).

One TaskGroup per family: `compare_<object>` tasks (items after their parents: they are compared
through them), then a `repair` group holding the family's own replay chains (chain.object_chain
through replay_dag.family_chains, read by id, `force`), which run only when `repair` is on and
something needs reading again, and `finish`, which marks extras deleted in the target and counts
what was repaired.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TypedDict

from airflow.sdk import DAG, ObjectStoragePath, TaskGroup, Variable, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from airflow.timetables.interval import CronDataIntervalTimetable

from .dag_defaults import deadline_alerts, default_args
from .dag_factory import START_DATE
from .errors import fail_fast
from .families import Family
from .hooks.zuora import ZuoraHook
from .manifests import RunPlan
from .mapping import cached_mapping
from .params import reconciliation_params
from .reconciliation import (
    ObjectReconciliation,
    compare_object,
    extra_marks,
    ledger_delivered,
    period_of,
    repair_plan,
    repaired_ids,
    revived_ids,
)
from .reconciliation_report import differences, write_report
from .reconciliation_store import ReconciliationStore
from .replay_dag import family_chains, replayable_families
from .settings import (
    API_POOL,
    RECONCILIATION_ALERT_THRESHOLD,
    RECONCILIATION_ALERT_VARIABLE,
    RECONCILIATION_DAG_ID,
)
from .sinks import sink_for
from .staging import remove_tree, run_dir, staging_root
from .state import StateStore
from .windows import parse_instant

DAG_ID = RECONCILIATION_DAG_ID
DOC = """### zuora_reconciliation

Monthly (and on demand): for each chosen **family** and object, the records whose `updatedDate` falls
in the period (`period_start`..`period_end`, UTC days; default: the previous calendar month) are
compared id by id between Zuora (Object Query: `id`, `updatedDate`, status and amounts only,
under the family's filters and delivers-if) and the family's target:

- **missing**: in Zuora, not in the target; **extra**: in the target, gone from Zuora or outside
  the family's selection (flagged, never deleted); **stale**: the target's `updated_date` is older;
  **mismatch**: same `updated_date`, but status or an amount differs (Zuora changes balances without
  a new updatedDate).
- Items read through their parents (the items of Posted invoices) are compared through them.

Results: `zuora_etl_reconciliation` and `zuora_etl_reconciliation_diffs` (state database), and
`reconciliation/<run_id>/report.html` with CSV files under the reports root (Variable
`zuora_etl_reports_root`). **repair** re-syncs missing, stale and mismatched records through each
family's replay chains (forced) and marks extras in the target (`zuora_deleted_at`). More
differences than Variable `{variable}` (default {threshold}) left after all that fail the
`report` task, naming the counts and the report.
"""


class ReconPlan(TypedDict):
    """What the `plan` task decided: the run, the period (UTC ISO), the families, repair or not."""

    run_id: str
    period_start: str
    period_end: str
    families: list[str]
    repair: bool
    staging_dir: str


class ReportResult(TypedDict):
    report: str
    differences: int
    left: int


def build_reconciliation_dag() -> DAG:
    families, broken = replayable_families()
    doc = DOC.format(variable=RECONCILIATION_ALERT_VARIABLE, threshold=RECONCILIATION_ALERT_THRESHOLD)
    if broken:
        doc += "\n**Not reconciled until fixed**: " + "; ".join(f"`{k}`: {v[:300]}" for k, v in broken.items())
    with DAG(
        dag_id=DAG_ID,
        description="Compare Zuora with each family's target id by id over a month; optionally repair",
        doc_md=doc,
        # @monthly with real data intervals (as the sync DAGs): a scheduled run's interval is the
        # calendar month before it, which is its default period.
        schedule=CronDataIntervalTimetable("@monthly", timezone="UTC"),
        start_date=START_DATE,
        catchup=False,
        # One at a time: two runs repairing the same targets would re-sync and mark the same rows twice.
        max_active_runs=1,
        tags=["zuora", "reconciliation"],
        # One retry after 5 minutes: a comparison starts over (its rows are cleared), and a transient
        # Zuora or database error has usually passed by then; the hook already retries each call.
        default_args=default_args("data-integration", 1, timedelta(minutes=5)),
        deadline=deadline_alerts(DAG_ID),
        params=reconciliation_params(families),
    ) as dag:
        run_plan = plan_task([f.family for f in families])
        finished = []
        for family in families:
            with TaskGroup(group_id=family.family, tooltip=f"compare {family.dag_id}'s target with Zuora"):
                results: dict = {}
                for o in family.objects:
                    parent = results[o.parent.object] if o.parent else None
                    results[o.name] = compare_task(family, o.name)(run_plan, parent)
                with TaskGroup(group_id="repair", tooltip="the family's replay chains, forced, for what differs"):
                    plan = repair_plan_task(family)(run_plan, results)
                    chains = family_chains(family, plan)
                    done = finish_task(family)(results)
                    [c.last for c in chains.values()] >> done  # what they loaded is read from the ledger
            finished.append(done)
        report = report_task(run_plan, {f.family: [o.name for o in f.objects] for f in families})
        finished >> report
        report >> clean_task(run_plan).as_teardown()
    return dag


def plan_task(known: list[str]):
    @task(task_id="plan")
    def plan() -> ReconPlan:
        """The period (params, else the data interval, else the previous month) and the families."""
        ctx = get_current_context()
        params = dict(ctx["params"])
        try:
            interval = (ctx.get("data_interval_start"), ctx.get("data_interval_end"))
            lo, hi = period_of(params, interval, ctx.get("logical_date") or datetime.now(UTC))
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from None  # a bad param: no retry fixes it
        chosen = list(dict.fromkeys(params.get("families") or known))
        unknown = [f for f in chosen if f not in known]
        if unknown:
            raise AirflowFailException(f"unknown or invalid families {unknown}; choose among {', '.join(known)}")
        run_id = ctx["run_id"]
        return {"run_id": run_id, "period_start": lo.isoformat(), "period_end": hi.isoformat(), "families": chosen,
                "repair": bool(params.get("repair")),
                "staging_dir": str(run_dir(staging_root(), "reconciliation", run_id))}  # fmt: skip

    return plan()


def _naive(iso: str) -> datetime:
    return parse_instant(iso).replace(tzinfo=None)


def compare_task(family: Family, name: str):
    @task(task_id=f"compare_{name}", pool=API_POOL)
    def compare(plan: ReconPlan, parent: ObjectReconciliation | None = None) -> ObjectReconciliation:
        """Zuora's records of the period against the target's, id by id; differences to the state DB."""
        if family.family not in plan["families"]:
            raise AirflowSkipException(f"{family.family} was not chosen")
        run_id, store = plan["run_id"], ReconciliationStore()
        store.clear(run_id, family.family, name)  # a retry starts over
        directory = ObjectStoragePath(plan["staging_dir"]) / family.family / "compare" / name
        remove_tree(directory)
        period = (parse_instant(plan["period_start"]), parse_instant(plan["period_end"]))
        hook = ZuoraHook(track_prefix=f"{DAG_ID}.{family.family}.compare_{name}")
        with fail_fast():
            result = compare_object(hook, sink_for(family.sink), family, name, period, directory,
                                    lambda rows: store.add_diffs(run_id, rows),
                                    parent_seen=parent["seen_parts"] if parent else ())  # fmt: skip
        store.record({"run_id": run_id, "family": family.family, "object": name,
                      "period_start": _naive(plan["period_start"]), "period_end": _naive(plan["period_end"]),
                      "zuora_count": result["zuora_count"], "target_count": result["target_count"],
                      "missing": result["missing"], "extra": result["extra"], "stale": result["stale"],
                      "mismatched": result["mismatched"], "repaired": 0})  # fmt: skip
        return result

    return compare


def repair_plan_task(family: Family):
    @task.short_circuit(task_id="plan", ignore_downstream_trigger_rules=False)
    def plan(run_plan: ReconPlan, results: dict[str, ObjectReconciliation | None]) -> RunPlan | None:
        """What the family's chains read again (ids climbed to what the replay reads by id); skips
        the chains when repair is off or nothing needs reading again."""
        if not run_plan["repair"]:
            return None
        staging = ObjectStoragePath(run_plan["staging_dir"]) / family.family / "repair"
        with fail_fast():
            hook = ZuoraHook(track_prefix=f"{DAG_ID}.{family.family}.repair")
            return repair_plan(family, results, hook, run_plan["run_id"], staging)

    return plan


def finish_task(family: Family):
    # Runs when the comparisons succeeded, whether the chains ran or were skipped (no repair);
    # skipped with its family not chosen (every upstream skipped), without pulling absent results.
    @task(task_id="finish", trigger_rule="none_failed_min_one_success")
    def finish(results: dict[str, ObjectReconciliation | None]) -> dict[str, int]:
        """Mark extras deleted in the target (repair) and count per object what was repaired: the
        records the chains delivered (this run's ledger), and the extras marked."""
        ctx = get_current_context()
        if not ctx["params"].get("repair"):
            return {}
        sink, now, run_id = sink_for(family.sink), datetime.now(UTC), ctx["run_id"]
        state = StateStore().engine
        repaired: dict[str, int] = {}
        for o in family.objects:
            result = results.get(o.name)
            if not result:
                continue
            mapping = cached_mapping(o.mapping_name)
            fixed = repaired_ids(result, partial(ledger_delivered, state, run_id, family.family, o.name))
            sink.set_deleted(mapping, {i: None for i in revived_ids(result) if i in fixed})
            marks = extra_marks(result, now)
            sink.set_deleted(mapping, marks)
            repaired[o.name] = len(fixed) + len(marks)
        ReconciliationStore().set_repaired(run_id, family.family, repaired)
        return repaired

    return finish


def alert_threshold() -> int:
    raw = Variable.get(RECONCILIATION_ALERT_VARIABLE, default=None)
    try:
        return int(raw) if raw not in (None, "") else RECONCILIATION_ALERT_THRESHOLD
    except ValueError:
        why = f"Variable {RECONCILIATION_ALERT_VARIABLE} must be a whole number, not {raw!r}"
        raise AirflowFailException(why) from None  # a setting to fix, not a retry


@task(task_id="report", trigger_rule="all_done")
def report_task(run_plan: ReconPlan | None, objects: dict[str, list[str]]) -> ReportResult:
    """Write report.html and the CSVs from the state tables; then fail (the alert) when more
    differences are left than the threshold, or an object of a chosen family was not compared."""
    if not run_plan:
        raise AirflowFailException("the run was not planned (see the plan task); nothing was compared")
    store = ReconciliationStore()
    rows = store.summaries(run_plan["run_id"])
    done = {(r["family"], r["object"]) for r in rows}
    wanted = [(fam, obj) for fam in run_plan["families"] for obj in objects.get(fam, [])]
    not_compared = {f"{f}.{o}": "its comparison failed; see the task's log" for f, o in wanted if (f, o) not in done}
    period = (parse_instant(run_plan["period_start"]), parse_instant(run_plan["period_end"]))
    path = write_report(store, run_plan["run_id"], period, run_plan["repair"], not_compared)
    kinds: Counter[str] = Counter()
    for r in rows:
        kinds.update({k: r[k] for k in ("missing", "extra", "stale", "mismatched", "repaired")})
    total = sum(differences(r) for r in rows)
    left = total - kinds["repaired"]
    threshold = alert_threshold()
    counts = ", ".join(f"{kinds[k]} {k}" for k in ("missing", "extra", "stale", "mismatched"))
    repaired = f"; {kinds['repaired']} repaired, {left} left" if run_plan["repair"] else ""
    if not_compared:
        raise AirflowFailException(f"not compared: {', '.join(not_compared)}; {counts}{repaired}; report: {path}")
    if left > threshold:
        raise AirflowFailException(
            f"{left} reconciliation differences above the alert threshold {threshold} (Variable "
            f"{RECONCILIATION_ALERT_VARIABLE}): {counts}{repaired}; report: {path}"
        )
    return {"report": path, "differences": total, "left": left}


@task(task_id="clean_staging")
def clean_task(run_plan: ReconPlan | None) -> None:
    """Remove the run's staging (Zuora's sorted runs, staged ids, the repair chains' parts)."""
    if run_plan:
        remove_tree(ObjectStoragePath(run_plan["staging_dir"]))


__all__ = ["DAG_ID", "build_reconciliation_dag"]
