"""The pipeline's contestant under a real executor: the `zuora_crm_invoices` DAG run once by
`airflow standalone` (LocalExecutor: scheduler, DAG processor, triggerer, API server) from an empty
target, state and watermarks, in a fresh Airflow home under --workdir.

Unlike bench/contestant_pipeline.py (dag.test() in one process), every task instance is its own
process and the `zuora_api` pool (5 slots) runs mapped extracts side by side. The run is triggered
through the REST API with the same conf as contestant_pipeline.

- warm: before the measured run, one run of the same DAG over a range of WARM_UP_RANGE (a day in
  2000: nothing to read, nothing loaded, no watermark moved) warms the deployment as any earlier
  run does on a long-running Airflow. Its cost is the API server's first Execution API call (the
  first task's `run` request took 2.6 to 7 s on a fresh standalone, against milliseconds after).
  The emulator's counters are reset after it. `--cold` measures the first run of a fresh
  standalone instead (the result's `warm` says which).
- wall_seconds: from the trigger request until polling (every POLL_S) sees the run terminal;
  `run_seconds` is the run's own start_date..end_date from the API; `startup_seconds` (home,
  `db migrate`, standalone start, DAG parsed, the warm-up run) is not in wall.
- per task: start, end and duration from the API (mapped instances with their map_index), and the
  task process's own memory, measured in that process by a listener (bench/executor_plugin.py,
  loaded from a temporary plugins folder beside symlinks to the project's plugins): VmRSS at start,
  VmHWM (peak RSS, reset at the task's start through /proc/self/clear_refs) and PSS/private memory
  from /proc/self/smaps_rollup at its end. The task runner is forked from a LocalExecutor worker, so
  its RSS counts pages it shares copy-on-write with that worker; PSS splits them.
- retries: a cluster policy in the home's config/airflow_local_settings.py sets every task's
  retries to 0 (the DAG's default_args come from the family YAML), so a failure shows at once; the
  poller also stops as soon as any task instance is failed or up_for_retry.
- metadata database: a throwaway PostgreSQL database when 127.0.0.1:5432 answers (trust auth), else
  SQLite in the home (the result's `metadata_db` says which).

    python -m bench.contestant_executor --zuora-url URL --sink-conn JSON --workdir DIR --out result.json
                                        [--bulk {auto,always,never}] [--cold]
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import requests

from bench.common import DAG_ID, ROOT, project_paths, target_counts, write_result
from bench.contestant_pipeline import contestant_name, contestant_parser

POLL_S = 0.5  # how often the run's state is read: wall's resolution, light on a 2-core machine
RUN_TIMEOUT_S = 4 * 3600  # the harness's own contestant timeout is the same; this one stops the poller cleanly
STARTUP_TIMEOUT_S = 300  # standalone start on a loaded 2-core machine took up to ~60 s; allow for a slow CI
DAG_PARSE_TIMEOUT_S = 240  # twelve DAG files parsed by the DAG processor on 2 cores
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"  # the local trust-auth server (tests/ui/conftest.py)
MEMORY_ENV = "ZUORA_BENCH_TASK_MEMORY"  # the listener's output file (bench/executor_plugin.py)
PLUGIN_FILE = ROOT / "bench" / "executor_plugin.py"
TERMINAL_RUN_STATES = {"success", "failed"}
FAILING_TASK_STATES = {"failed", "up_for_retry", "upstream_failed"}
# The warm-up run's range: Zuora holds nothing updated then, so the run reads and loads nothing and,
# being a range, moves no watermark.
WARM_UP_RANGE = ("2000-01-01T00:00:00+00:00", "2000-01-02T00:00:00+00:00")
# Every task's retries to 0, applied where Airflow parses the DAG (DAG processor, task runner): the
# family's retries (2, 5 min apart) would hide a failure for many minutes.
LOCAL_SETTINGS = '''"""Written by bench/contestant_executor.py: no retries in the benchmark's Airflow."""


def task_policy(task):
    task.retries = 0
'''


@contextlib.contextmanager
def metadata_database(home: Path) -> Iterator[tuple[str, str]]:
    """(kind, SQLAlchemy URL): a throwaway PostgreSQL database, dropped afterwards, when the local
    server answers; else a SQLite file in `home`."""
    try:
        import psycopg

        admin = psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres", connect_timeout=3,
                                autocommit=True)  # fmt: skip
    except Exception:  # no server (or no driver): SQLite, as `make ui` does
        yield "sqlite", f"sqlite:///{home / 'airflow.db'}"
        return
    name = f"zuora_bench_meta_{uuid.uuid4().hex[:10]}"
    try:
        admin.execute(f"CREATE DATABASE {name}")
        yield "postgres", f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with contextlib.suppress(Exception):
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


def plugins_folder(workdir: Path) -> Path:
    """A plugins folder: symlinks to every entry of the project's plugins/ plus the bench listener."""
    folder = workdir / "plugins"
    folder.mkdir(parents=True, exist_ok=True)
    for entry in (ROOT / "plugins").iterdir():
        link = folder / entry.name
        if not link.exists() and not link.is_symlink():
            link.symlink_to(entry)
    link = folder / "zuora_bench_task_memory.py"
    if not link.exists():
        link.symlink_to(PLUGIN_FILE)
    return folder


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def max_parallel(intervals: list[tuple[float, float]]) -> int:
    """The most intervals (start, end) open at once (an end at the same instant as a start closes first)."""
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    most = cur = 0
    for _, step in events:
        cur += step
        most = max(most, cur)
    return most


def read_memory_lines(path: Path, run_id: str) -> dict[tuple[str, int], dict[str, Any]]:
    """The listener's lines for this run, by (task_id, map_index); a later try replaces an earlier one."""
    out: dict[tuple[str, int], dict[str, Any]] = {}
    if not path.exists():
        return out
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            rec = json.loads(line)
            if rec.get("run_id") == run_id:
                out[(rec["task_id"], rec.get("map_index", -1))] = rec
    return out


def task_rows(tis: list[dict[str, Any]], memory: dict[tuple[str, int], dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per task instance: the API's timing and the task process's memory, in start order."""
    rows = []
    for ti in tis:
        mem = memory.get((ti["task_id"], ti.get("map_index", -1)), {})
        rows.append({
            "task_id": ti["task_id"],
            "map_index": ti.get("map_index", -1),
            "state": ti.get("state"),
            "start": ti.get("start_date"),
            "end": ti.get("end_date"),
            "seconds": round(ti["duration"], 3) if ti.get("duration") is not None else None,
            "try_number": ti.get("try_number"),
            "max_tries": ti.get("max_tries"),
            "pool": ti.get("pool"),
            "peak_rss_mib": mem.get("peak_rss_mib"),
            "rss_start_mib": mem.get("rss_start_mib"),
            "rss_end_mib": mem.get("rss_end_mib"),
            "pss_mib": mem.get("pss_mib"),
            "private_clean_mib": mem.get("private_clean_mib"),
            "private_dirty_mib": mem.get("private_dirty_mib"),
            "listener_seconds": mem.get("seconds"),
            "pid": mem.get("pid"),
            "ppid": mem.get("ppid"),
            "memory_exact": mem.get("exact"),
        })  # fmt: skip
    rows.sort(key=lambda r: (r["start"] or "", r["task_id"], r["map_index"]))
    return rows


def run(base: str, sink_conn: str, workdir: Path, bulk: str = "never", warm: bool = True) -> dict[str, Any]:
    project_paths()
    from scripts.ui import free_port, prepare_home, start_standalone, wait_for_dags

    workdir = workdir.resolve()
    home, data_dir = workdir / "airflow", workdir / "data"
    memory_file = workdir / "task_memory.jsonl"
    memory_file.unlink(missing_ok=True)
    (home / "config").mkdir(parents=True, exist_ok=True)
    (home / "config" / "airflow_local_settings.py").write_text(LOCAL_SETTINGS)
    t_setup = time.perf_counter()
    with contextlib.ExitStack() as stack:
        kind, url = stack.enter_context(metadata_database(home))
        extra_env = {
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url,
            # Only the run this contestant triggers: no cron run of any DAG (tests/ui/conftest.py).
            "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(plugins_folder(workdir)),
            "AIRFLOW_CONN_ZUORA_CRM_SINK": sink_conn,
            MEMORY_ENV: str(memory_file),
        }
        env = prepare_home(home, data_dir, base, extra_env=extra_env)
        ui = start_standalone(env, free_port(), log_path=workdir / "standalone.log", timeout=STARTUP_TIMEOUT_S)
        stack.callback(ui.stop)  # before the PostgreSQL database is dropped (LIFO)
        api = ui.client()
        errors = wait_for_dags(api, [DAG_ID], timeout=DAG_PARSE_TIMEOUT_S)
        if f"{DAG_ID}.py" in errors:
            raise RuntimeError(f"{DAG_ID} does not import:\n{errors[f'{DAG_ID}.py']}")
        api.patch(f"dags/{DAG_ID}", {"is_paused": False})
        conf = {"start": None, "end": None, "dry_run": False, "slices": None, "bulk": bulk}
        if warm:
            warm_conf = {**conf, "start": WARM_UP_RANGE[0], "end": WARM_UP_RANGE[1]}
            warm_run_id, warm_state, warm_failing = trigger_and_wait(api, warm_conf)
            if warm_state != "success":
                raise RuntimeError(f"the warm-up run {warm_run_id} ended {warm_state}: {warm_failing}")
            requests.post(f"{base}/_admin/stats", timeout=30).raise_for_status()  # count the measured run only
        startup = time.perf_counter() - t_setup

        started = time.perf_counter()
        run_id, state, failing = trigger_and_wait(api, conf)
        wall = time.perf_counter() - started
        dag_run = api.get(f"dags/{DAG_ID}/dagRuns/{run_id}")

        tis = api.get(f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"]
        # A task process writes its line as its last act; the API may show it done a moment earlier.
        grace = time.monotonic() + 10
        memory = read_memory_lines(memory_file, run_id)
        while len(memory) < sum(1 for t in tis if t["state"] in ("success", "failed")) and time.monotonic() < grace:
            time.sleep(0.5)
            memory = read_memory_lines(memory_file, run_id)
        tasks = task_rows(tis, memory)
        intervals = [(_ts(t["start"]), _ts(t["end"])) for t in tasks if t["start"] and t["end"]]
        run_start, run_end = _ts(dag_run.get("start_date")), _ts(dag_run.get("end_date"))

        os.environ.update({k: v for k, v in env.items() if k.startswith(("AIRFLOW", "ZUORA"))})
        objects = target_counts(run_id)

    measured = [t for t in tasks if t["peak_rss_mib"] is not None]
    peaks = [t["peak_rss_mib"] for t in measured]
    pss = [t["pss_mib"] for t in measured if t["pss_mib"] is not None]
    return {
        "contestant": contestant_name(bulk),
        "runner": "executor",
        "bulk": bulk,
        "state": state,
        "failing_tasks": failing,
        "run_id": run_id,
        "metadata_db": kind,
        "executor": "LocalExecutor (airflow standalone)",
        "warm": warm,
        "wall_seconds": round(wall, 3),
        "run_seconds": round(run_end - run_start, 3) if run_start and run_end else None,
        "startup_seconds": round(startup, 3),
        "records": sum(o["records"] for o in objects.values()),
        "objects": objects,
        "peak_rss_mib": max(peaks, default=None),
        "task_peak_rss_mib": max(peaks, default=None),
        "task_peak_pss_mib": max(pss, default=None),
        "task_peak_growth_mib": max((t["peak_rss_mib"] - t["rss_start_mib"] for t in measured), default=None),
        "task_memory_source": "listener in each task process (VmHWM reset at start, exact)",
        "task_memory_lines": len(measured),
        "task_instances": len(tasks),
        "task_memory_exact": bool(measured) and all(t["memory_exact"] for t in measured),
        "retries_zeroed": bool(tasks) and all(t["max_tries"] == 0 for t in tasks if t["max_tries"] is not None),
        "max_parallel_tasks": max_parallel(intervals),
        "contestant_pid": os.getpid(),
        "harness_pid": os.getppid(),
        "tasks": tasks,
    }


def trigger_and_wait(api: Any, conf: dict[str, Any]) -> tuple[str, str, list[str]]:
    """Trigger one run of the DAG with `conf` and poll it until it ends: (run id, its state, the task
    instances failing, which end the wait at once: retries are off)."""
    dag_run = api.post(f"dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": conf})
    run_id = dag_run["dag_run_id"]
    failing: list[str] = []
    deadline = time.perf_counter() + RUN_TIMEOUT_S
    while True:
        state = api.get(f"dags/{DAG_ID}/dagRuns/{run_id}")["state"]
        if state in TERMINAL_RUN_STATES:
            return run_id, state, failing
        tis = api.get(f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"]
        failing = [f"{t['task_id']}[{t.get('map_index', -1)}]={t['state']}" for t in tis
                   if t["state"] in FAILING_TASK_STATES]  # fmt: skip
        if failing or time.perf_counter() > deadline:
            return run_id, "failed" if failing else "timeout", failing
        time.sleep(POLL_S)


def main() -> None:
    parser = contestant_parser(__doc__)
    parser.add_argument("--cold", action="store_true", help="measure the first run of a fresh standalone (no warm-up)")
    args = parser.parse_args()
    write_result(args.out, run(args.zuora_url, args.sink_conn, args.workdir, args.bulk, warm=not args.cold))


if __name__ == "__main__":
    main()
