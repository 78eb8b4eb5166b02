"""The pipeline's contestant: the `zuora_crm_invoices` DAG run once with dag.test() from an empty
target, state and watermarks, in a fresh Airflow home of its own (this process's).

Peak memory per task: dag.test() runs every task in this process, one at a time. A task listener
resets the kernel's RSS high-water mark (/proc/self/clear_refs, 5) when a task starts and reads
VmHWM when it ends, so each task's figure is the process's exact peak RSS while that task ran (no
sampling gap). It includes what the process already held (Airflow, the DagBag, heap kept from earlier
tasks); `rss_start_mib` says how much, and a task in its own worker process would start lower.

`--bulk` is the run's `bulk` param: `never` (the default) reads every object by Object Query pages,
the harness's `pipeline` contestant; `always` reads the first load by one Data Query export per
object, its `data_query` contestant (the result's "contestant" says which).

    python -m bench.contestant_pipeline --zuora-url URL --sink-conn JSON --workdir DIR --out result.json
                                        [--bulk {auto,always,never}]
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.common import DAG_ID, proc_status_mib, project_paths, reset_peak_rss, target_counts, write_result

# A pristine migrated metadata DB per Airflow version, copied into each run's fresh home:
# `airflow db migrate` takes longer than a small run itself.
MIGRATED_DB_CACHE = Path(os.environ.get("ZUORA_BENCH_CACHE", Path.home() / ".cache" / "zuora_bench"))

PROFILE_LINES = 60  # the profile summary's length: enough to see Airflow's and the pipeline's big callers
BULK_CHOICES = ("auto", "always", "never")  # the sync DAGs' `bulk` param (zuora_etl.settings.BULK_CHOICES)


class TaskMemory:
    """An Airflow listener: each task instance's seconds and peak RSS, in the order they ran."""

    def __init__(self) -> None:
        self.tasks: list[dict[str, Any]] = []
        self._current: dict[str, Any] | None = None
        self.exact = True

    def start(self, task_instance: Any) -> None:
        self.exact = reset_peak_rss() and self.exact
        self._current = {
            "task_id": task_instance.task_id,
            "map_index": getattr(task_instance, "map_index", -1),
            "rss_start_mib": round(proc_status_mib("VmRSS") or 0, 1),
            "_t0": time.perf_counter(),
        }

    def end(self, task_instance: Any, state: str) -> None:
        cur, self._current = self._current, None
        if cur is None or cur["task_id"] != task_instance.task_id:
            return
        cur["seconds"] = round(time.perf_counter() - cur.pop("_t0"), 3)
        cur["peak_rss_mib"] = round(proc_status_mib("VmHWM") or 0, 1)
        cur["state"] = state
        self.tasks.append(cur)


def make_listener(memory: TaskMemory) -> object:
    from airflow.sdk._shared.listeners import hookimpl

    class Listener:
        @hookimpl
        def on_task_instance_running(self, previous_state: Any, task_instance: Any) -> None:
            memory.start(task_instance)

        @hookimpl
        def on_task_instance_success(self, previous_state: Any, task_instance: Any) -> None:
            memory.end(task_instance, "success")

        @hookimpl
        def on_task_instance_failed(self, previous_state: Any, task_instance: Any, error: Any = None) -> None:
            memory.end(task_instance, "failed")

        @hookimpl
        def on_task_instance_skipped(self, previous_state: Any, task_instance: Any) -> None:
            memory.end(task_instance, "skipped")

    return Listener()


def contestant_name(bulk: str) -> str:
    """The harness's name for a run with this `bulk` param: `data_query` when every first load is
    read by Data Query export, else `pipeline` (auto reads a small first load by Object Query)."""
    return "data_query" if bulk == "always" else "pipeline"


def run(base: str, sink_conn: str, workdir: Path, profile: Path | None = None, bulk: str = "never") -> dict[str, Any]:
    project_paths()
    home = workdir / "airflow"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["ZUORA_TEST_AIRFLOW_HOME"] = str(home)
    template = MIGRATED_DB_CACHE / f"airflow-{version('apache-airflow-core')}.db"
    if template.exists():
        shutil.copyfile(template, home / "airflow.db")
    from tests.airflow_env import configure

    configure()  # a fresh metadata DB: no watermark, no Variable, no earlier run
    if not template.exists():
        template.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(home / "airflow.db", template.with_suffix(".tmp"))
        os.replace(template.with_suffix(".tmp"), template)
    from scripts.local_env import apply, local_connections

    apply(local_connections(base, workdir / "data"))
    os.environ["AIRFLOW_CONN_ZUORA_CRM_SINK"] = sink_conn
    os.environ["AIRFLOW_VAR_ZUORA_ETL_SETTLE_SECONDS"] = "0"
    from airflow.dag_processing.dagbag import DagBag
    from airflow.sdk.listener import get_listener_manager

    bag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"])
    dag = bag.dags[DAG_ID]
    for task in dag.tasks:
        task.retries = 0  # a failure must show now, not after a retry delay
    # A run-duration deadline alert is not what is measured; dag.test() on a DagBag DAG (not
    # serialized to the metadata DB) cannot look its alerts up in Airflow 3.3, so run without.
    if getattr(dag, "deadline", None):
        dag.deadline = None
    memory = TaskMemory()
    get_listener_manager().add_listener(make_listener(memory))
    rss_before = proc_status_mib("VmRSS") or 0
    hwm_before = proc_status_mib("VmHWM") or 0
    conf = {"start": None, "end": None, "dry_run": False, "slices": None, "bulk": bulk}
    profiler = cProfile.Profile() if profile else None
    started = time.perf_counter()
    if profiler:
        dag_run = profiler.runcall(dag.test, run_conf=conf)
    else:
        dag_run = dag.test(run_conf=conf)
    wall = time.perf_counter() - started
    if profiler and profile:
        with profile.open("w") as fh:
            fh.write(
                f"dag.test() of {DAG_ID} (bulk={bulk}): {wall:.1f}s wall; main thread only (extract threads not seen)\n"
            )
            pstats.Stats(profiler, stream=fh).sort_stats("cumulative").print_stats(PROFILE_LINES)
            fh.write("\nThe same run by own time (where the CPU goes, callers aside):\n")
            pstats.Stats(profiler, stream=fh).sort_stats("tottime").print_stats(PROFILE_LINES)
    state = str(getattr(dag_run.state, "value", dag_run.state))

    objects = target_counts(dag_run.run_id)
    peaks = [t["peak_rss_mib"] for t in memory.tasks]
    return {
        "contestant": contestant_name(bulk),
        "runner": "dag_test",
        "bulk": bulk,
        "state": state,
        "wall_seconds": round(wall, 3),
        "records": sum(o["records"] for o in objects.values()),
        "objects": objects,
        "rss_before_run_mib": round(rss_before, 1),
        "peak_rss_before_run_mib": round(hwm_before, 1),
        "peak_rss_mib": round(max([hwm_before, *peaks, proc_status_mib("VmHWM") or 0]), 1),
        "task_peak_rss_mib": max(peaks, default=None),
        "task_peak_growth_mib": max((t["peak_rss_mib"] - t["rss_start_mib"] for t in memory.tasks), default=None),
        "task_memory_exact": memory.exact,
        "tasks": memory.tasks,
    }


def contestant_parser(doc: str | None) -> argparse.ArgumentParser:
    """The command line both DAG-run contestants take (this one and bench/contestant_executor.py)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--zuora-url", required=True)
    parser.add_argument("--sink-conn", type=_connection, required=True, help="the zuora_crm_sink connection as JSON")
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--bulk",
        choices=BULK_CHOICES,
        default="never",
        help="the run's `bulk` param: never = Object Query (the pipeline contestant), always = Data Query "
        "export (the data_query contestant)",
    )
    return parser


def _connection(text: str) -> str:
    json.loads(text)  # fail early on a malformed connection
    return text


def main() -> None:
    parser = contestant_parser(__doc__)
    parser.add_argument("--profile", type=Path, help="write a cProfile summary of dag.test() here")
    args = parser.parse_args()
    write_result(args.out, run(args.zuora_url, args.sink_conn, args.workdir, args.profile, args.bulk))


if __name__ == "__main__":
    main()
