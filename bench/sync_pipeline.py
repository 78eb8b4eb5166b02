"""Superseded by bench/harness.py (make bench): kept as a shortcut for the pipeline alone.

    python bench/sync_pipeline.py [--items 100000] [--latency 0] [--sinks sqlite]

runs only the `pipeline` contestant of the harness (the zuora_crm_invoices DAG with dag.test() in a
fresh Airflow home, peak RSS per task) and writes bench/results/sync_pipeline-<items>.json and .md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--sinks", nargs="+", default=["sqlite"])
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from bench.harness import main as harness

    harness(
        ["--items", str(args.items), "--latency", str(args.latency), "--sinks", *args.sinks,
         "--contestants", "pipeline", "--name", f"sync_pipeline-{args.items}"]
    )  # fmt: skip


if __name__ == "__main__":
    main()
