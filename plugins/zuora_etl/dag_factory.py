"""Builds one sync DAG from a family model: plan -> per object (extract -> transform -> load ->
mark) -> advance -> summarize."""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, Param, TaskGroup, Variable, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from airflow.timetables.interval import CronDataIntervalTimetable

from .families import Family, FamilyObject, get_family
from .hooks.zuora import ZuoraHook
from .mapping import cached_mapping
from .operators.extract import ZuoraObjectQueryOperator
from .operators.load import ZuoraSinkOperator
from .operators.mark import ZuoraMarkTransferredOperator
from .pipeline import systemic_failure, transform
from .planning import next_watermark, plan_run, should_advance
from .staging import remove_tree, run_dir, staging_root, sweep_stale_runs
from .state import StateStore
from .windows import hwm_variable, parse_instant

log = logging.getLogger(__name__)
API_POOL = "zuora_api"  # bounds concurrent Zuora calls across all DAGs (Object Query allows 40-80)
START_DATE = datetime(2025, 1, 1, tzinfo=UTC)


def _doc(family: Family) -> str:
    rows = "\n".join(
        f"| `{o.name}` | {', '.join(f'`{f}`' for f in o.filters) or '-'} | "
        f"{f'by `{o.parent.key}` of the {o.parent.object} read' if o.parent else 'updatedDate window'} | "
        f"`{cached_mapping(o.mapping_name).table}` | {'yes' if o.mark_transferred else ''} |"
        for o in family.objects
    )
    return f"""### {family.dag_id}

{family.description}

Sink connection `{family.sink}`, Zuora connection `zuora_default`, state in `zuora_etl_state`.

| object | filters | read by | table | flag transferred |
| --- | --- | --- | --- | --- |
{rows}

**Params**: `start` / `end` (ISO date or datetime) read that range and leave the watermarks alone;
`dry_run` reads and transforms, loads nothing. Watermarks: Variables
`zuora_hwm__{family.family}__<object>`; settle lag {family.settle_seconds}s, overlap
{family.overlap_seconds}s (Variable `zuora_etl_settle_seconds` overrides the lag).
"""


def sync_dag(name: str) -> DAG:
    """The sync DAG of family `name` (include/families/<name>.yaml). A family or mapping file that
    does not validate raises here, naming the file and the fix: the DAG file that asked shows it as
    its import error and the other families' DAGs keep running."""
    family = get_family(name)
    for o in family.objects:
        mapping = cached_mapping(o.mapping_name)
        if mapping.object != o.name:
            raise ValueError(f"family {family.family}: mapping {o.mapping_name} maps {mapping.object}, not {o.name}")
    return build_sync_dag(family)


def build_sync_dag(family: Family) -> DAG:
    fam = family.family
    with DAG(
        dag_id=family.dag_id,
        description=family.description.strip().splitlines()[0][:200],
        doc_md=_doc(family),
        schedule=CronDataIntervalTimetable(family.schedule, timezone="UTC") if family.schedule else None,
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        tags=sorted({"zuora", family.target, *family.tags}),
        default_args={
            "owner": family.owner,
            "retries": family.retries,
            "retry_delay": timedelta(minutes=family.retry_delay_minutes),
            "retry_exponential_backoff": True,
        },
        params={
            "start": Param(None, type=["null", "string"], description="Backfill from (ISO date or datetime)"),
            "end": Param(
                None, type=["null", "string"], description="Backfill until (exclusive; a bare date: through that day)"
            ),
            "dry_run": Param(False, type="boolean", description="Extract and transform only"),
        },
    ) as dag:

        @task(task_id="plan")
        def plan() -> dict:
            ctx = get_current_context()
            dag_run = ctx["dag_run"]
            return plan_run(
                family,
                dict(ctx["params"]),
                str(getattr(dag_run.run_type, "value", dag_run.run_type)),
                (ctx.get("data_interval_start"), ctx.get("data_interval_end")),
                datetime.now(UTC),
                lambda name: Variable.get(name, default=None),
            )

        @task.short_circuit(task_id="loads_enabled", ignore_downstream_trigger_rules=False)
        def loads_enabled(run_plan: dict) -> bool:
            """False for a dry run: loads, marks and watermark moves are skipped."""
            return run_plan["mode"] != "dry_run"

        run_plan = plan()
        gate = loads_enabled(run_plan)
        extracts: dict[str, Any] = {}
        loads: dict[str, ZuoraSinkOperator] = {}
        finals = []
        for o in family.objects:
            with TaskGroup(group_id=o.name):
                extract = ZuoraObjectQueryOperator(
                    task_id="extract",
                    family=fam,
                    zuora_object=o.name,
                    plan=None if o.parent else run_plan,
                    parent=extracts[o.parent.object] if o.parent else None,
                    parent_key=o.parent.key if o.parent else None,
                    filters=o.filters,
                    mapping=o.mapping_name,
                    extra_fields=["transferredToAccounting"] if o.mark_transferred else [],
                    retry_dead_letters=True,
                    pool=API_POOL,
                )
                extracts[o.name] = extract.output

                @task(task_id="transform")
                def transform_task(manifest: dict, o: FamilyObject = o) -> dict:
                    """Map the staged records; an object failing as a whole fails here, before any load."""
                    ctx = get_current_context()
                    directory = run_dir(staging_root(), manifest["family"], ctx["run_id"]) / manifest["object"]
                    carry = (o.parent.key,) if o.parent else ()
                    result = transform(cached_mapping(o.mapping_name), manifest, directory, carry)
                    why = systemic_failure(result, family.systemic_reject_ratio, family.systemic_reject_min_rows)
                    if why:
                        raise AirflowFailException(why)
                    return result

                transformed = transform_task(extract.output)
                loaded = ZuoraSinkOperator(
                    task_id="load", family=fam, zuora_object=o.name, manifest=transformed,
                    sink_conn_id=family.sink, mapping=o.mapping_name, scope=family.scope(o.name),
                    parent_result=loads[o.parent.object].output if o.parent else None,
                    parent_key=o.parent.key if o.parent else None,
                )  # fmt: skip
                loads[o.name] = loaded
                gate >> loaded
                last = loaded
                if o.mark_transferred:
                    last = ZuoraMarkTransferredOperator(
                        task_id="mark", family=fam, zuora_object=o.name, manifest=loaded.output,
                        sink_conn_id=family.sink, mapping=o.mapping_name, pool=API_POOL,
                    )  # fmt: skip
                finals.append(last)

        @task(task_id="advance")
        def advance(run_plan: dict) -> dict:
            """Move each object's watermark to the newest updatedDate its committed load read."""
            if not should_advance(run_plan):
                return {}
            ti = get_current_context()["ti"]
            moved = {}
            for o in family.objects:
                if o.parent:
                    continue
                manifest = ti.xcom_pull(task_ids=f"{o.name}.load")
                windows = run_plan["objects"][o.name]["windows"]
                name = hwm_variable(fam, o.name)
                current = Variable.get(name, default=None)
                target = next_watermark(current, manifest and manifest.get("max_updated"), windows)
                if target != current:
                    Variable.set(name, target)
                    moved[o.name] = {"from": current, "to": target}
            return moved

        @task(task_id="summarize", trigger_rule="all_done")
        def summarize(run_plan: dict | None = None) -> list[dict]:
            return summarize_run(family, get_current_context(), run_plan)

        advanced = advance(run_plan)
        finals >> advanced
        summarize(run_plan).set_upstream([*finals, advanced])
    return dag


def summarize_run(family: Family, ctx: Any, run_plan: dict | None) -> list[dict]:
    """One runs row per object; clean staging when everything landed; fail if anything did not."""
    ti, run_id = ctx["ti"], ctx["run_id"]
    mode = (run_plan or {}).get("mode", "unknown")
    moved = ti.xcom_pull(task_ids="advance") or {}
    state = StateStore()
    rows, failed, partial = [], [], []
    for o in family.objects:
        ex = ti.xcom_pull(task_ids=f"{o.name}.extract") or {}
        tr = ti.xcom_pull(task_ids=f"{o.name}.transform") or {}
        ld = ti.xcom_pull(task_ids=f"{o.name}.load") or {}
        mk = ti.xcom_pull(task_ids=f"{o.name}.mark") or {} if o.mark_transferred else {}
        ok = bool(tr) if mode == "dry_run" else bool(ld) and (bool(mk) or not o.mark_transferred)
        left = 0 if mode == "dry_run" else tr.get("quarantined", 0) + ld.get("rejected", 0) + ld.get("held", 0)
        windows = ex.get("windows") or []
        plan_obj = (run_plan or {}).get("objects", {}).get(o.name, {})
        row = {
            "run_id": run_id, "family": family.family, "object": o.name, "dag_id": family.dag_id, "mode": mode,
            "window_lo": _naive(windows[0]["lo"]) if windows else None,
            "window_hi": _naive(windows[-1]["hi"]) if windows else None,
            "rows_extracted": ex.get("rows", 0), "rows_loaded": ld.get("loaded", 0),
            "rows_unchanged": ld.get("unchanged", 0), "rows_quarantined": tr.get("quarantined", 0),
            "rows_rejected": ld.get("rejected", 0), "rows_marked": mk.get("marked", 0),
            "api_calls": ex.get("api_calls", 0), "watermark_before": plan_obj.get("watermark"),
            "watermark_after": (moved.get(o.name) or {}).get("to", plan_obj.get("watermark")),
            "seconds": round(sum(m.get(k, 0) for m, k in ((ex, "extract_seconds"), (tr, "transform_seconds"),
                                                           (ld, "load_seconds"))), 3),
            "status": ("dry_run" if mode == "dry_run" else "partial" if left else "success") if ok else "failed",
        }  # fmt: skip
        state.record_run(row)
        rows.append(row)
        if not ok:
            failed.append(o.name)
        elif left:
            partial.append(f"{o.name} ({left})")
    log.info("%s %s (%s):", family.dag_id, run_id, mode)
    for r in rows:
        log.info(
            "  %-24s extracted %7d loaded %7d unchanged %7d quarantined %5d refused %5d marked %6d api %5d %s",
            r["object"], r["rows_extracted"], r["rows_loaded"], r["rows_unchanged"], r["rows_quarantined"],
            r["rows_rejected"], r["rows_marked"], r["api_calls"], r["status"],
        )  # fmt: skip
    if failed:
        # The failure is the upstream task's, with its own retries; repeating this report fixes nothing.
        raise AirflowFailException(f"{family.dag_id}: {', '.join(failed)} did not complete; staging kept for the rerun")
    root = staging_root()
    remove_tree(run_dir(root, family.family, run_id))
    swept = sweep_stale_runs(run_dir(root, family.family, run_id).parent, time.time())
    if swept:
        log.info("Removed the staging of %d earlier failed runs: %s", len(swept), ", ".join(swept))
    if partial:
        # Not green: records were left behind. They wait in zuora_etl_dead_letters and every later
        # run reads them again from Zuora; retrying this task would change nothing.
        raise AirflowFailException(
            f"{family.dag_id}: partial run, records left in dead letters: {', '.join(partial)}; the next run "
            "retries them (see zuora_etl_dead_letters for the reasons)"
        )
    return rows


def _naive(iso: str | None) -> datetime | None:
    return parse_instant(iso).replace(tzinfo=None) if iso else None


__all__ = ["API_POOL", "ZuoraHook", "build_sync_dag"]
