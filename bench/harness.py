"""The sync benchmark of issue 11: the invoices family against the raw limit and dlt.

For each scale (invoice items) and per-answer latency, one emulator process serves a tenant sized to
that many items; against it, one after another, each contestant reads invoices and invoice items
into each sink (SQLite, and PostgreSQL when 127.0.0.1:5432 answers):

- `pipeline`: the `zuora_crm_invoices` DAG, run once from an empty target, state and watermarks, in a
  child process with a fresh Airflow home, by the runner `--runner` names:
  `executor` (the default, bench/contestant_executor.py): `airflow standalone` (LocalExecutor) runs
  one triggered run, each task in its own process and mapped extracts side by side in the
  `zuora_api` pool's 5 slots, after one warm-up run over an empty range (as on a long-running
  Airflow; `--cold`: the first run of a fresh standalone); `dag_test`: dag.test() runs every task
  one after another in the child process itself (bench/contestant_pipeline.py);
- `raw`: the limit: one keep-alive session paging each object with a single cursor, then one bare
  bulk insert per sink (bench/contestant_raw.py); one paging pass serves both sinks, so each sink's row
  is that pass's read time plus its own insert time;
- `dlt`: a dlt `rest_api` source into the same database (bench/contestant_dlt.py);
- `data_query`: the same DAG and harness as `pipeline`, run with the param `bulk=always`: the first
  load reads each object by one Data Query export job (a few API calls per object) instead of
  Object Query pages (⌈N/99⌉ calls). It loads into a target of its own (SQLite: data_query.db;
  PostgreSQL: a second throwaway database, since both write the tables invoices and invoice_items)
  from its own empty Airflow home; `pipeline` runs with `bulk=never`, the Object Query path.

Every contestant runs in its own process, so its peak RSS is its own; the DAG-run contestants report
each task's peak RSS, measured by a listener in the process that ran the task (under `executor`, the
task's own process; under `dag_test`, the one dag.test process). The emulator counts each
contestant's API calls, most requests in flight and 429s (its /_admin/stats, reset before each).
Results: bench/results/<name>.json and .md (also printed).

    python -m bench.harness [--items 10000 100000] [--latency 0 0.3] [--sinks sqlite postgres]
                            [--contestants pipeline raw dlt data_query] [--name NAME]
                            [--runner {executor,dag_test}] [--cold] [--results-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from bench.common import ROOT, family_fields
from bench.report import add_ratios, evaluate_targets, markdown

# Invoice items per account of the generated tenant (455 accounts give 10,091 items, 4,545 about
# 100k): a scale asked for in items becomes an account count for the emulator's --accounts.
ITEMS_PER_ACCOUNT = 22.2
DEFAULT_ITEMS = [10_000, 100_000]  # `make bench`; 1M is an option: it takes long at 0.3 s latency
DEFAULT_LATENCIES = [0.0, 0.3]  # the two cases: no added latency, and Zuora-like 0.3 s
# Zuora's default Object Query concurrency limit, which the emulator enforces with 429s.
EMULATOR_CONCURRENCY = 80
# A contestant still running after this is stopped and its row says so (1M at 0.3 s single cursor
# needs about 10k pages x 0.3 s = 51 min).
CONTESTANT_TIMEOUT_S = 4 * 3600
# Generating a 1M-item tenant the first time takes minutes; later runs reuse the cached file.
EMULATOR_START_TIMEOUT_S = 1800
PG_ADMIN_DSN = os.environ.get("BENCH_PG_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
CONTESTANTS = ("pipeline", "raw", "dlt", "data_query")
# The DAG-run contestants (bench/contestant_pipeline.py) and the `bulk` param each runs with.
PIPELINE_BULK = {"pipeline": "never", "data_query": "always"}
# How the DAG-run contestants run the DAG: a real executor (`airflow standalone`, LocalExecutor: each
# task its own process, the zuora_api pool's 5 slots run mapped extracts side by side) or dag.test()
# (every task one after another in one process).
RUNNERS = {"executor": "bench.contestant_executor", "dag_test": "bench.contestant_pipeline"}
DEFAULT_RUNNER = "executor"
SINKS = ("sqlite", "postgres")
FIELDS_JSON = ""  # set by main(): the fields every contestant requests


class EmulatorProcess:
    """The bundled emulator in its own process, as in the demo: its threads never share our GIL."""

    def __init__(self, accounts: int, latency_s: float, workdir: Path, log: Path) -> None:
        from include.zuora_emulator.server import free_port

        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable, "-m", "include.zuora_emulator", "serve", "--port", str(self.port),
            "--accounts", str(accounts), "--latency-ms", str(round(latency_s * 1000)),
            "--concurrency", str(EMULATOR_CONCURRENCY),
        ]  # fmt: skip
        self.log = log.open("w")
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env={**os.environ, "TMPDIR": str(workdir)},
        )
        deadline = time.monotonic() + EMULATOR_START_TIMEOUT_S
        line = ""
        while "serving" not in line:
            line = self.proc.stdout.readline()
            if (not line and self.proc.poll() is not None) or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the emulator did not start; see {log}")
        self.counts: dict[str, int] = requests.get(f"{self.base}/_admin/counts", timeout=60).json()

    def reset_stats(self) -> None:
        requests.post(f"{self.base}/_admin/stats", timeout=30).raise_for_status()

    def stats(self) -> dict[str, Any]:
        s = requests.get(f"{self.base}/_admin/stats", timeout=30).json()
        api = {k: v for k, v in s["requests"].items() if k not in ("admin", "query-file")}
        return {
            "api_calls": sum(api.values()),
            "requests": api,
            "max_requests_in_flight": s.get("max_requests_in_flight"),
            "rate_limited": s.get("rate_limited", s["statuses"].get("429", 0)),
            "statuses": {k: v for k, v in s["statuses"].items()},
            "tokens_issued": s.get("tokens_issued"),
            "records_served": s.get("records_served"),
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


def postgres_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_DSN, connect_timeout=5):
            return None
    except Exception as exc:  # any failure means: no PostgreSQL rows, with the reason
        return f"PostgreSQL not reachable at 127.0.0.1:5432 ({type(exc).__name__})"


@contextlib.contextmanager
def throwaway_postgres(tag: str):
    """A new empty database for one scenario, dropped afterwards; yields (name, DSN)."""
    import psycopg

    name = f"zuora_bench_{os.getpid()}_{tag}"
    with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name, PG_ADMIN_DSN.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN_DSN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run_child(module: str, args: list[str], out: Path, log: Path, timeout: float) -> tuple[str, dict | None, str]:
    """Run `python -m module args` in its own session; (status, result, reason)."""
    cmd = [sys.executable, "-m", module, *args, "--out", str(out)]
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return "timeout", None, f"timed out after {timeout:.0f}s"
    if rc != 0 or not out.exists():
        tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
        return "error", None, f"exit {rc}: {tail[0][:200]}"
    return "ok", json.loads(out.read_text()), ""


def dlt_missing() -> str | None:
    proc = subprocess.run([sys.executable, "-c", "import dlt"], capture_output=True, cwd=ROOT)
    return None if proc.returncode == 0 else "skipped: dlt not installed (pip install -r bench/requirements.txt)"


def _pg_conn(database: str) -> str:
    """The pipeline's zuora_crm_sink connection (Airflow JSON) to a database of the local PostgreSQL."""
    conn = {"conn_type": "postgres", "host": "127.0.0.1", "port": 5432, "login": "postgres", "schema": database}
    return json.dumps(conn)


def _row(scenario: dict, sink: str, contestant: str, **fields: Any) -> dict[str, Any]:
    return {
        "items_target": scenario["items_target"],
        "items": scenario["truth"]["invoice_items"],
        "latency_s": scenario["latency_s"],
        "sink": sink,
        "contestant": contestant,
        **fields,
    }


def _finish(row: dict[str, Any], truth: int) -> dict[str, Any]:
    if row["status"] == "ok":
        row["records_match"] = row["records"] == truth
        row["records_per_s"] = round(row["records"] / row["wall_seconds"], 1) if row["wall_seconds"] else None
        if not row["records_match"]:
            row["reason"] = f"{row['records']} records, Zuora has {truth}"
    return row


class Rows(list):
    """The results' rows; every append or extend saves the results so far (a long run that is
    stopped, or times out, still leaves what it measured)."""

    def __init__(self, save: Callable[[], None]) -> None:
        super().__init__()
        self.save = save

    def append(self, row: dict) -> None:
        super().append(row)
        self.save()

    def __iadd__(self, rows: Iterable[dict]) -> Rows:
        super().extend(rows)
        self.save()
        return self


def run_scenario(items: int, latency: float, sinks: list[str], contestants: list[str], work: Path,
                 timeout: float, skip: dict[str, str], scenarios: list[dict], rows: Rows,
                 profile_dir: Path | None = None, runner: str = DEFAULT_RUNNER,
                 cold: bool = False) -> None:  # fmt: skip
    accounts = max(1, round(items / ITEMS_PER_ACCOUNT))
    tag = f"{items}_{round(latency * 1000)}ms"
    sdir = work / tag
    sdir.mkdir(parents=True, exist_ok=True)
    print(f"== {items:,} items ({accounts} accounts), latency {latency:g}s: starting the emulator", flush=True)
    emu = EmulatorProcess(accounts, latency, sdir, sdir / "emulator.log")
    truth = {"invoices": emu.counts["invoices"], "invoice_items": emu.counts["invoice-items"]}
    total = sum(truth.values())
    scenario = {"items_target": items, "accounts": accounts, "latency_s": latency, "truth": truth}
    scenarios.append(scenario)
    try:
        with contextlib.ExitStack() as stack:
            dbs: dict[str, dict[str, str]] = {}
            for sink in sinks:
                if sink in skip:
                    continue
                if sink == "postgres":
                    name, dsn = stack.enter_context(throwaway_postgres(tag))
                    dbs[sink] = {"pipeline": _pg_conn(name), "raw": dsn, "dlt": dsn}
                    if "data_query" in contestants:
                        # Its own database: it writes the same tables as the pipeline.
                        dq_name, _ = stack.enter_context(throwaway_postgres(f"{tag}_dq"))
                        dbs[sink]["data_query"] = _pg_conn(dq_name)
                else:
                    d = sdir / "sqlite"
                    d.mkdir(exist_ok=True)
                    dbs[sink] = {
                        "pipeline": json.dumps({"conn_type": "sqlite", "host": str(d / "pipeline.db")}),
                        "data_query": json.dumps({"conn_type": "sqlite", "host": str(d / "data_query.db")}),
                        "raw": f"sqlite:///{d / 'raw.db'}",
                        "dlt": f"sqlite:///{d / 'dlt.db'}",
                    }
            for sink in sinks:
                if sink in skip:
                    rows += [_row(scenario, sink, c, status="skipped", reason=skip[sink]) for c in contestants]
            if "raw" in contestants and dbs:
                print(f"   raw limit -> {', '.join(dbs)}", flush=True)
                emu.reset_stats()
                status, res, reason = run_child(
                    "bench.contestant_raw",
                    ["--zuora-url", emu.base, "--fields", FIELDS_JSON,
                     *[a for s in dbs for a in ("--db", dbs[s]["raw"])]],
                    sdir / "raw.json", sdir / "raw.log", timeout,
                )  # fmt: skip
                stats = emu.stats()
                for sink in dbs:
                    if status != "ok":
                        rows.append(_row(scenario, sink, "raw", status=status, reason=reason, stats=stats))
                        continue
                    write = next(w for w in res["writes"] if w["db"] == sink)
                    rows.append(_finish(_row(
                        scenario, sink, "raw", status="ok", records=res["records"],
                        wall_seconds=round(res["read_seconds"] + write["write_seconds"], 3),
                        read_seconds=res["read_seconds"], write_seconds=write["write_seconds"],
                        peak_rss_mib=res["peak_rss_mib"], stats=stats, detail=res,
                    ), total))  # fmt: skip
            for sink in dbs:
                for contestant in contestants:
                    if contestant == "raw":
                        continue
                    if contestant in skip:
                        rows.append(_row(scenario, sink, contestant, status="skipped", reason=skip[contestant]))
                        continue
                    print(f"   {contestant} -> {sink}", flush=True)
                    cdir = sdir / f"{contestant}-{sink}"
                    cdir.mkdir(exist_ok=True)
                    args = ["--zuora-url", emu.base, "--workdir", str(cdir)]
                    if contestant in PIPELINE_BULK:  # the DAG, by Object Query or by Data Query export
                        module = RUNNERS[runner]
                        args += ["--sink-conn", dbs[sink][contestant], "--bulk", PIPELINE_BULK[contestant]]
                        if cold and runner == "executor":
                            args.append("--cold")
                        if profile_dir and runner == "dag_test":
                            args += ["--profile", str(profile_dir / f"profile-{contestant}-{tag}-{sink}.txt")]
                    else:
                        module = f"bench.contestant_{contestant}"
                        args += ["--fields", FIELDS_JSON, "--db", dbs[sink]["dlt"]]
                    emu.reset_stats()
                    status, res, reason = run_child(module, args, cdir / "result.json", cdir / "run.log", timeout)
                    stats = emu.stats()
                    if status != "ok":
                        rows.append(_row(scenario, sink, contestant, status=status, reason=reason, stats=stats))
                        continue
                    if res.get("state") != "success":
                        status, reason = "failed", f"run state {res.get('state')}"
                    res.pop("contestant", None)
                    rows.append(_finish(_row(scenario, sink, contestant, status=status, reason=reason, stats=stats,
                                             **res), total))  # fmt: skip
                    print(f"     {res['records']:,} records in {res['wall_seconds']:,.1f}s", flush=True)
    finally:
        emu.stop()


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, nargs="+", default=DEFAULT_ITEMS, help="invoice items per scale")
    parser.add_argument("--latency", type=float, nargs="+", default=DEFAULT_LATENCIES, help="seconds per answer")
    parser.add_argument("--sinks", nargs="+", choices=SINKS, default=list(SINKS))
    parser.add_argument("--contestants", nargs="+", choices=CONTESTANTS, default=list(CONTESTANTS))
    parser.add_argument("--name", help="results file name (default: sync-<items>)")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--timeout", type=float, default=CONTESTANT_TIMEOUT_S, help="seconds per contestant")
    parser.add_argument("--keep-workdir", action="store_true", help="keep databases and logs (path printed)")
    parser.add_argument(
        "--cold", action="store_true", help="executor runner: measure the first run of a fresh standalone (no warm-up)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile each pipeline run (slower) into results/<name>-profiles/"
    )
    parser.add_argument(
        "--runner",
        choices=sorted(RUNNERS),
        default=DEFAULT_RUNNER,
        help="how pipeline and data_query run the DAG: executor = airflow standalone (LocalExecutor), "
        "dag_test = dag.test() in one process",
    )
    args = parser.parse_args(argv)
    if args.profile and args.runner != "dag_test":
        parser.error("--profile needs --runner dag_test (it profiles dag.test() in one process)")
    name = args.name or "sync-" + "-".join(f"{n // 1000}k" if n >= 1000 else str(n) for n in args.items)

    global FIELDS_JSON
    FIELDS_JSON = json.dumps(family_fields())  # the pipeline's own field lists, for raw and dlt
    skip: dict[str, str] = {}
    if "postgres" in args.sinks and (why := postgres_available()):
        skip["postgres"] = f"skipped: {why}"
    if "dlt" in args.contestants and (why := dlt_missing()):
        skip["dlt"] = why
    work = Path(tempfile.mkdtemp(prefix="zuora-bench-"))
    profile_dir = args.results_dir / f"{name}-profiles" if args.profile else None
    if profile_dir:
        profile_dir.mkdir(parents=True, exist_ok=True)
    scenarios: list[dict] = []
    started = time.perf_counter()
    args.results_dir.mkdir(parents=True, exist_ok=True)
    out = args.results_dir / f"{name}.json"

    def save(final: bool = False) -> str:
        done = [dict(r) for r in rows]
        add_ratios(done)
        evaluate_targets(done)
        result = {
            "benchmark": "sync_harness",
            "name": name,
            "when": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()} cores={os.cpu_count()}",
            "python": platform.python_version(),
            "emulator_concurrency": EMULATOR_CONCURRENCY,
            "runner": args.runner,
            "warm": args.runner == "executor" and not args.cold,
            "note": f"harness {time.perf_counter() - started:,.0f}s" + ("" if final else " (partial: still running)"),
            "complete": final,
            "scenarios": scenarios,
            "rows": done,
            "notes": RUNNER_NOTES[args.runner]
            + (COLD_NOTE if args.cold else WARM_NOTE).get(args.runner, [])
            + COMMON_NOTES
            + list(skip.values()),
        }
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        md = markdown(result)
        out.with_suffix(".md").write_text(md)
        return md

    rows = Rows(save)
    try:
        for items in args.items:
            for latency in args.latency:
                run_scenario(items, latency, args.sinks, args.contestants, work, args.timeout, skip, scenarios,
                             rows, profile_dir, args.runner, args.cold)  # fmt: skip
    finally:
        if args.keep_workdir:
            print(f"work directory kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(save(final=True))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return out


RUNNER_NOTES = {
    "executor": [
        "wall s: each contestant's own clock around its work (not interpreter start-up or Airflow's `db migrate`); "
        "pipeline and data_query (runner executor): from the REST API trigger of one run under `airflow "
        "standalone` (LocalExecutor, pool zuora_api of 5 slots: mapped extracts side by side) until polling "
        "(every 0.5 s) sees the run terminal; the home, `db migrate` and standalone start-up are left out "
        "(startup_seconds); run_seconds is the run's own start..end from the API; 'overhead s' = wall - the time "
        "some task was running (scheduling and start-up gaps between tasks).",
        "peak MB: pipeline and data_query = the largest per-task peak RSS, each task instance in its own task "
        "process (VmHWM reset at the task's start through /proc/self/clear_refs and read at its end by a "
        "listener in that process: exact, no sampling; it counts pages shared copy-on-write with the "
        "LocalExecutor worker that forked it, the tasks' PSS is in the JSON); raw and dlt = the contestant "
        "process's peak RSS.",
    ],
    "dag_test": [
        "wall s: each contestant's own clock around its work (not interpreter start-up or Airflow's `db migrate`); "
        "pipeline (runner dag_test): dag.test() end to end, which runs tasks one at a time in one process (mapped "
        "extracts too) and pays dag.test's per-task overhead ('overhead s': wall - the tasks' seconds).",
        "peak MB: pipeline and data_query = the largest per-task peak RSS (VmHWM reset at each task's start through "
        "/proc/self/clear_refs, read at its end: exact, no sampling; includes what the dag.test process "
        "already held); raw and dlt = the contestant process's peak RSS.",
    ],
}
WARM_NOTE = {
    "executor": [
        "warm: before the measured run, one run of the same DAG over a day in 2000 (nothing to read, nothing "
        "loaded, no watermark moved) warms the standalone as any earlier run does on a long-running Airflow; "
        "the emulator's counters are reset after it. A fresh standalone's first Execution API call took 2.6 to "
        "7 s (the first task's `run` request), paid once per API server; --cold measures that first run."
    ]
}
COLD_NOTE = {"executor": ["cold: the measured run is the first run of a freshly started standalone (--cold)."]}
COMMON_NOTES = [
    "raw: one paging pass (single cursor, pageSize 99) serves every sink; a sink's wall = that pass + its "
    "own bulk insert (executemany into text columns on SQLite, COPY on PostgreSQL).",
    "API calls, in flight, 429s: the emulator's counters for that contestant (in flight = most API "
    "requests being answered at once, any route). raw's counters are for its one pass, shown on each sink.",
    "x limit and x dlt: wall / the raw limit's or dlt's wall in the same scenario and sink. SQLite: each "
    "contestant writes its own file in one directory; PostgreSQL: one throwaway database per scenario, "
    "each contestant its own tables (dlt: schema dlt_bench), and a second one for data_query.",
    "data_query: the pipeline's DAG with bulk=always (pipeline: bulk=never), from its own empty target and "
    "Airflow home: the first load reads each object by one Data Query export job (submit, polls, result "
    "file) instead of Object Query pages. API calls count the query jobs' submit and status calls; the "
    "result file's download is not an API call (route query-file, left out, as for every contestant).",
]


if __name__ == "__main__":
    main()
