"""Throughput and peak memory of one sync DAG run (dag.test) against the emulator in its own process.

    python bench/sync_pipeline.py [--scale medium] [--dag zuora_crm_invoices]

Prints a table per object (records, API calls, seconds, records/s) and the process's peak RSS, and
writes bench/results/sync_pipeline-<dag>-<scale>.json. Peak memory should stay flat as the scale
grows: pages stream into Parquet parts of 20k rows and every later step reads one part at a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scale", default="medium")
    parser.add_argument("--dag", default="zuora_crm_invoices")
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
    from include.zuora_emulator.server import free_port
    from tests.airflow_env import configure

    configure()
    port = free_port()
    emulator = subprocess.Popen([sys.executable, "-m", "include.zuora_emulator", "serve", "--port", str(port),
                                 "--scale", args.scale], cwd=ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        print(emulator.stdout.readline().strip(), flush=True)
        from scripts.local_env import apply, local_connections

        data = Path(tempfile.mkdtemp(prefix="zuora-bench-"))
        apply(local_connections(f"http://127.0.0.1:{port}", data))
        os.environ["AIRFLOW_VAR_ZUORA_ETL_SETTLE_SECONDS"] = "0"
        from airflow.dag_processing.dagbag import DagBag
        from zuora_etl.state import StateStore

        dag = DagBag(dag_folder=str(ROOT / "dags")).dags[args.dag]
        for task in dag.tasks:
            task.retries = 0
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        run = dag.test(run_conf={"start": None, "end": None, "dry_run": False})
        seconds = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        rows = [r for r in StateStore().runs() if r["run_id"] == run.run_id]
        total = sum(r["rows_extracted"] for r in rows)
        print(f"{args.dag} on the {args.scale} tenant: {run.state}, {seconds:.1f}s wall, "
              f"{total / seconds:,.0f} records/s end to end")  # fmt: skip
        print(f"peak RSS {peak:,.0f} MiB (before the run {rss_before:,.0f} MiB)")
        print(f"{'object':<24} {'records':>9} {'API calls':>9} {'seconds':>8} {'records/s':>10}")
        for r in sorted(rows, key=lambda r: r["object"]):
            print(f"{r['object']:<24} {r['rows_extracted']:>9} {r['api_calls']:>9} {r['seconds']:>8.1f} "
                  f"{r['rows_extracted'] / max(r['seconds'], 1e-9):>10,.0f}")  # fmt: skip
        result = {
            "benchmark": "sync_pipeline", "dag": args.dag, "scale": args.scale, "state": str(run.state),
            "when": datetime.now(UTC).isoformat(), "wall_seconds": round(seconds, 2), "records": total,
            "peak_rss_mib": round(peak), "rss_before_run_mib": round(rss_before),
            "machine": f"{platform.machine()} cores={os.cpu_count()}", "python": platform.python_version(),
            "objects": [{k: r[k] for k in ("object", "rows_extracted", "rows_loaded", "api_calls", "seconds")}
                        for r in rows],
        }  # fmt: skip
        out = ROOT / "bench" / "results" / f"sync_pipeline-{args.dag}-{args.scale}.json"
        out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        print(f"wrote {out.relative_to(ROOT)}")
    finally:
        emulator.terminate()
        emulator.wait(timeout=10)


if __name__ == "__main__":
    main()
