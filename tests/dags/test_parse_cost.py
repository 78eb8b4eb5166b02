"""The DAG files that run often parse without the library's heavy modules.

Every task process parses its DAG file before it runs its task, and the DAG processor parses every
file again and again. pandas, numpy, pyarrow and the HTTP provider (aiohttp) cost about a second of
imports; the tasks that need them import them when they run. Each file is parsed here in a fresh
interpreter, by a DagBag as the task runner does, after importing what an Airflow worker already
holds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.airflow_env import ROOT

HEAVY = ("pandas", "numpy", "pyarrow", "matplotlib", "aiohttp", "airflow.providers.http")
# The seven sync DAGs (scheduled every few minutes, a dozen task starts a run), the replay DAG and
# the watch DAG. The monthly ones (reconciliation, sizing, preflight) import their reports' tools.
LIGHT_FILES = [
    "zuora_crm_accounts.py", "zuora_crm_subscriptions.py", "zuora_crm_orders.py", "zuora_crm_invoices.py",
    "zuora_erp_invoices.py", "zuora_erp_payments.py", "zuora_erp_memos.py", "zuora_replay.py", "zuora_watch.py",
]  # fmt: skip

# What a run's last task (finish) imports, beyond the DAG file: it only moves watermarks, records
# rows and sweeps directories, after the loads.
LIGHT_MODULES = ["zuora_etl.summary"]

PARSE = """
import json, sys
import airflow.models, airflow.sdk, airflow.sdk.execution_time.task_runner  # what a worker holds
from airflow.dag_processing.dagbag import DagBag

before = set(sys.modules)
bag = DagBag(dag_folder=sys.argv[1])
heavy = sorted(m for m in set(sys.modules) - before if m.split(".")[0] in sys.argv[2:] or
               any(m == h or m.startswith(h + ".") for h in sys.argv[2:]))
print(json.dumps({"dags": sorted(bag.dag_ids), "errors": {k: str(v) for k, v in bag.import_errors.items()},
                  "heavy": heavy}))
"""


@pytest.mark.parametrize("name", LIGHT_FILES)
def test_dag_file_parses_without_heavy_modules(name):
    done = subprocess.run(
        [sys.executable, "-c", PARSE, str(ROOT / "dags" / name), *HEAVY],
        capture_output=True, text=True, env=os.environ, timeout=120, check=True,
    )  # fmt: skip
    parsed = json.loads(done.stdout.strip().splitlines()[-1])
    assert parsed["errors"] == {} and parsed["dags"], parsed
    assert parsed["heavy"] == [], f"{name} imports at parse time: {parsed['heavy'][:10]}"


IMPORT = """
import json, sys
import airflow.sdk
before = set(sys.modules)
__import__(sys.argv[1])
print(json.dumps(sorted(m for m in set(sys.modules) - before
                        if any(m == h or m.startswith(h + ".") for h in sys.argv[2:]))))
"""


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_the_end_of_a_run_imports_no_heavy_modules(module):
    done = subprocess.run(
        [sys.executable, "-c", IMPORT, module, *HEAVY],
        capture_output=True, text=True, env=os.environ, timeout=120, check=True,
    )  # fmt: skip
    heavy = json.loads(done.stdout.strip().splitlines()[-1])
    assert heavy == [], f"{module} imports: {heavy[:10]}"
