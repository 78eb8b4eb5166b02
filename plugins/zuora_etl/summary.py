"""The end of a run: the watermarks, one `zuora_etl_runs` row per object, the verdict, and staging
clean-up.

Pure over the chains' results (task outputs, not XCom lookups by task id), so that a renamed task
cannot silently zero the report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from airflow.sdk import ObjectStoragePath
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from .manifests import Moved, ObjectResults, RunPlan, RunRow, one_manifest
from .staging import remove_tree, sweep_stale_runs
from .state import StateStore
from .windows import parse_instant

log = logging.getLogger(__name__)
SUCCESS, PARTIAL, FAILED, DRY_RUN = "success", "partial", "failed", "dry_run"


def run_rows(
    dag_id: str,
    family: str,
    run_id: str,
    plan: RunPlan | None,
    results: dict[str, ObjectResults],
    moved: Moved | None,
) -> list[RunRow]:
    """One row per object from its chain's results; `status` says whether it landed whole."""
    plan = plan or {}  # type: ignore[assignment]
    mode = plan.get("mode", "unknown")
    rows: list[RunRow] = []
    for name, res in results.items():
        ex, ld = one_manifest(res.get("extract")) or {}, res.get("load") or {}
        mk, rb = res.get("mark") or {}, res.get("readback") or {}
        ok = landed(res, mode)
        left = ex.get("quarantined", 0) + ld.get("rejected", 0) + ld.get("held", 0) if mode != DRY_RUN else 0
        windows = ex.get("windows") or []
        obj_plan = plan.get("objects", {}).get(name, {})
        before = obj_plan.get("watermark")
        row: RunRow = {
            "run_id": run_id, "family": family, "object": name, "dag_id": dag_id, "mode": mode,
            "window_lo": _naive(windows[0]["lo"]) if windows else None,
            "window_hi": _naive(windows[-1]["hi"]) if windows else None,
            "rows_extracted": ex.get("rows", 0), "rows_loaded": ld.get("loaded", 0),
            "rows_unchanged": ld.get("unchanged", 0), "rows_quarantined": ex.get("quarantined", 0),
            "rows_rejected": ld.get("rejected", 0), "rows_marked": mk.get("marked", 0),
            "rows_held": ld.get("held", 0), "rows_canceled": ld.get("canceled", 0),
            "rows_skipped": ld.get("skipped", 0), "rows_inserted": ld.get("inserted") if ld.get("dry_run") else None,
            "api_calls": ex.get("api_calls", 0) + rb.get("api_calls", 0),
            "watermark_before": before, "watermark_after": ((moved or {}).get(name) or {}).get("to", before),
            "seconds": round(ex.get("extract_seconds", 0) + ex.get("transform_seconds", 0)
                             + ld.get("load_seconds", 0), 3),
            "status": (DRY_RUN if mode == DRY_RUN else PARTIAL if left else SUCCESS) if ok else FAILED,
        }  # fmt: skip
        rows.append(row)
    return rows


def landed(res: ObjectResults, mode: str) -> bool:
    """Whether an object's chain ran to its end: its load returned (and, where it marks documents
    in Zuora, the mark and the read-back did). A step that failed or did not run resolves to None."""
    ld, mk, rb = res.get("load"), res.get("mark"), res.get("readback")
    return bool(ld) and (mode == DRY_RUN or "mark" not in res or bool(mk and rb))


def finish(
    dag_id: str,
    family: str,
    run_id: str,
    plan: RunPlan | None,
    results: dict[str, ObjectResults],
    advance: Callable[[], Moved],
    state: StateStore | None = None,
) -> list[RunRow]:
    """A sync run's end in one step: move the watermarks (`advance`) when every object's chain
    landed, record the runs rows and give the verdict (`summarize`), and then, verdict or not, hand
    the family's sync lease on and remove the staging of a run that landed (`clean_staging`).

    One task instead of three (advance, summarize, a clean-up teardown) saves two task starts and
    two scheduler passes in every run. Should `advance` fail, the task retries with the lease still
    held (the run is alive); a run that ends failed frees it anyway (the next plan checks that the
    holder is alive)."""
    state = state or StateStore()
    mode = (plan or {}).get("mode", "unknown")
    moved = advance() if plan and all(landed(res, mode) for res in results.values()) else None
    try:
        return summarize(dag_id, family, run_id, plan, results, moved, state)
    finally:
        if plan and plan["mode"] == "sync":
            state.release_sync_lease(plan["family"], plan["run_id"])
        clean_staging(plan, state)


def summarize(
    dag_id: str,
    family: str,
    run_id: str,
    plan: RunPlan | None,
    results: dict[str, ObjectResults],
    moved: Moved | None,
    state: StateStore | None = None,
) -> list[RunRow]:
    """Record the run's rows and give its verdict: fail (no retry: repeating a report fixes
    nothing) when an object did not complete or left records in dead letters."""
    if plan and plan["mode"] == "covered":
        raise AirflowSkipException(f"{plan.get('backfill')}: nothing to report in this run")
    rows = run_rows(dag_id, family, run_id, plan, results, moved)
    state = state or StateStore()
    for row in rows:
        state.record_run(row)
    log.info("%s %s (%s):", dag_id, run_id, (plan or {}).get("mode", "unknown"))
    for r in rows:
        log.info(
            "  %-24s extracted %7d loaded %7d unchanged %7d canceled %5d skipped %6d quarantined %5d refused %5d "
            "held %5d marked %6d api %5d %s",
            r["object"], r["rows_extracted"], r["rows_loaded"], r["rows_unchanged"], r["rows_canceled"],
            r["rows_skipped"], r["rows_quarantined"], r["rows_rejected"], r["rows_held"], r["rows_marked"],
            r["api_calls"], r["status"],
        )  # fmt: skip
    _log_dry_run(results)
    failed = [r["object"] for r in rows if r["status"] == FAILED]
    if failed:
        raise AirflowFailException(f"{dag_id}: {', '.join(failed)} did not complete; staging kept for the rerun")
    partial = [f"{r['object']} ({r['rows_quarantined'] + r['rows_rejected'] + r['rows_held']})" for r in rows
               if r["status"] == PARTIAL]  # fmt: skip
    if partial:
        # Not green: records were left behind. They wait in zuora_etl_dead_letters and every later
        # run reads them again from Zuora; retrying this task would change nothing.
        raise AirflowFailException(
            f"{dag_id}: partial run, records left in dead letters: {', '.join(partial)}; the next run "
            "retries them (see zuora_etl_dead_letters for the reasons)"
        )
    return rows


def _log_dry_run(results: dict[str, ObjectResults]) -> None:
    for name, res in results.items():
        ld = res.get("load") or {}
        if not ld.get("dry_run"):
            continue
        log.info("  %s would insert %d, update %d, leave %d unchanged", name, ld["inserted"], ld["updated"],
                 ld["unchanged"])  # fmt: skip
        for diff in ld.get("differences", []):
            log.info(
                "    %s: %s", diff["id"], "; ".join(f"{c}: {a!r} -> {b!r}" for c, (a, b) in diff["changes"].items())
            )


def clean_staging(plan: RunPlan | None, state: StateStore | None = None) -> list[str]:
    """Remove the run's staging when `summarize` recorded every object as landed (a failed run
    keeps it for a rerun of its failed tasks), and sweep failed runs' staging past retention."""
    if not plan or not plan.get("staging_dir"):
        return []
    statuses = (state or StateStore()).run_statuses(plan["run_id"], plan["family"])
    run_dir = ObjectStoragePath(plan["staging_dir"])
    if not statuses or FAILED in statuses.values():
        log.info("Staging kept for a rerun: %s", run_dir)
        return []
    remove_tree(run_dir)
    swept = sweep_stale_runs(run_dir.parent, time.time())
    if swept:
        log.info("Removed the staging of %d earlier failed runs: %s", len(swept), ", ".join(swept))
    return swept


def _naive(iso: str | None) -> datetime | None:
    return parse_instant(iso).replace(tzinfo=None) if iso else None
