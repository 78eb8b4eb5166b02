"""The main job: a full sync of every family from the bundled Zuora emulator into local SQLite.

Starts an emulated tenant, points Airflow's connections at it and at SQLite files under
`.local/data/`, runs every sync DAG once with `dag.test()`, then prints what each loaded, where,
and whether the target now holds exactly Zuora's records under the family's filters.

With `--erp-api` (or `DEMO_ERP=api`), the ERP families deliver to the reference ERP REST API
(include/reference_erp, its documents in `.local/data/erp-api.db`) instead of SQLite, as they would
to NetSuite or SAP: invoices and memos with their lines nested, accepted documents flagged.

    .venv/bin/python -m scripts.demo [--scale small|medium|large] [--seed 42] [--erp-api]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / ".local"


def _airflow_home() -> Path:
    home = LOCAL / "airflow"
    os.environ.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__LOGGING__LOGGING_LEVEL=os.environ.get("DEMO_LOG_LEVEL", "ERROR"),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
    )
    sys.path[:0] = [str(ROOT), str(ROOT / "plugins")]
    if not (home / "airflow.db").exists():
        home.mkdir(parents=True, exist_ok=True)
        print("Preparing a local Airflow database in .local/airflow ...", flush=True)
        subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], check=True, capture_output=True)
    return home


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default=os.environ.get("DEMO_SCALE", "small"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--erp-api", action="store_true", default=os.environ.get("DEMO_ERP") == "api",
                        help="deliver the ERP families to the reference ERP REST API instead of SQLite")  # fmt: skip
    args = parser.parse_args()
    _airflow_home()

    from include.zuora_emulator import Emulator
    from scripts.local_env import apply, local_connections

    data = LOCAL / "data"
    shutil.rmtree(data, ignore_errors=True)  # a full sync: fresh targets, state and watermarks
    print(f"Generating the {args.scale} emulated tenant (seed {args.seed}) ...", flush=True)
    with Emulator(scale=args.scale, seed=args.seed) as emu, contextlib.ExitStack() as stack:
        apply(local_connections(emu.base_url, data))
        erp = stack.enter_context(reference_erp(data)) if args.erp_api else None
        # The emulator is consistent the moment it answers; Zuora's read side may lag its writes,
        # which is what the settle lag (default 120 s) is for. Without it, documents the ERP runs
        # flag below are visible to the CRM runs that follow.
        os.environ["AIRFLOW_VAR_ZUORA_ETL_SETTLE_SECONDS"] = "0"
        print(f"Zuora emulator at {emu.base_url}; targets in {data.relative_to(ROOT)}/", flush=True)
        from airflow.dag_processing.dagbag import DagBag
        from airflow.models import Variable
        from airflow.utils.session import create_session

        with create_session() as session:
            session.query(Variable).filter(Variable.key.like("zuora_hwm__%")).delete(synchronize_session=False)
        bag = DagBag(dag_folder=str(ROOT / "dags"))
        if bag.import_errors:
            print(f"DAG import errors: {bag.import_errors}", file=sys.stderr)
            return 1
        from zuora_etl.families import load_families

        results = []
        # ERP families first: flagging documents as transferred changes them in Zuora, and the CRM
        # families that run after read them as they now are.
        for family in sorted(load_families(), key=lambda f: (f.target != "erp", f.dag_id)):
            dag = bag.dags[family.dag_id]
            for task in dag.tasks:
                task.retries = 0  # show a failure at once instead of waiting out retry delays
            started = time.monotonic()
            run = dag.test(run_conf={"start": None, "end": None, "dry_run": False})
            state = str(getattr(run.state, "value", run.state))
            seconds = time.monotonic() - started
            print(f"  {family.dag_id:<26} {state:<8} {seconds:6.1f}s", flush=True)
            results.append((family, run.run_id, state))
        return report(emu, results, erp)


@contextlib.contextmanager
def reference_erp(data: Path):
    """The reference ERP API on a free port, as connection `zuora_erp_sink` (type http)."""
    import json

    from include.reference_erp import ReferenceErp

    with ReferenceErp(db_path=data / "erp-api.db") as erp:
        # A local API answers in a millisecond: 200 calls a second keeps the demo short. A real
        # ERP's connection states its own limits (rate_per_second, daily_call_budget).
        conn = {"conn_type": "http", "host": erp.url, "login": "erp", "password": "erp-secret",
                "extra": {"rate_per_second": 200, "health_endpoint": "/api/v1/health"}}  # fmt: skip
        os.environ["AIRFLOW_CONN_ZUORA_ERP_SINK"] = json.dumps(conn)
        print(f"Reference ERP API at {erp.url}; documents in {(data / 'erp-api.db').relative_to(ROOT)}", flush=True)
        yield erp


def report(emu, results, erp=None) -> int:
    from zuora_etl.state import StateStore

    from scripts.verify import compare_api, compare_family

    state = StateStore()
    ok = True
    header = (f"{'DAG':<26} {'object':<24} {'target table':<38} {'in Zuora':>9} {'in target':>9} {'API calls':>9}"
              "  equal")  # fmt: skip
    print("\n" + header + "\n" + "-" * len(header))
    for family, run_id, run_state in results:
        runs = {r["object"]: r for r in state.runs(family.family) if r["run_id"] == run_id}
        delivered_by_api = erp is not None and family.target == "erp"
        for c in compare_api(emu, family, erp.documents) if delivered_by_api else compare_family(emu, family):
            equal = c.equal and run_state == "success"
            ok &= equal
            print(f"{family.dag_id:<26} {c.object:<24} {c.table:<38} {c.zuora:>9} {c.target:>9} "
                  f"{runs.get(c.object, {}).get('api_calls', 0):>9}  {'yes' if equal else 'NO'}")  # fmt: skip
            if not c.equal:
                print(f"    {len(c.missing)} missing, {len(c.extra)} extra, {len(c.differing)} differing")
    erp_target = "the reference ERP API (erp-api.db)" if erp else "erp.db (ERP)"
    print(f"\nTargets: .local/data/crm.db (CRM) and {erp_target}; runs, ledger and dead letters in state.db.")
    print("Every family loaded; every target row equals Zuora's record." if ok else "Targets differ from Zuora.")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
