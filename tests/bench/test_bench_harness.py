"""A tiny, untimed run of the sync benchmark harness: its result files have the promised shape and
every contestant's records equal the emulator's truth. Timings are not asserted."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Invoice items of the tiny tenant: about 9 accounts, enough for every object to have records.
TINY_ITEMS = 200


def test_harness_writes_json_and_markdown_with_true_counts(tmp_path):
    contestants = ["pipeline", "raw"]
    # dlt is a bench-only dependency (bench/requirements.txt, installed by `make bench`).
    has_dlt = importlib.util.find_spec("dlt") is not None
    if has_dlt:
        contestants.append("dlt")
    proc = subprocess.run(
        [sys.executable, "-m", "bench.harness", "--items", str(TINY_ITEMS), "--latency", "0", "--sinks", "sqlite",
         "--contestants", *contestants, "data_query", "--name", "smoke", "--results-dir", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads((tmp_path / "smoke.json").read_text())
    md = (tmp_path / "smoke.md").read_text()

    assert {"name", "when", "machine", "scenarios", "rows", "notes"} <= set(result)
    (scenario,) = result["scenarios"]
    truth = scenario["truth"]["invoices"] + scenario["truth"]["invoice_items"]
    assert scenario["truth"]["invoice_items"] > 0
    rows = {r["contestant"]: r for r in result["rows"]}
    assert set(rows) == {*contestants, "data_query"}
    assert rows["data_query"]["status"] == "pending"
    for name in contestants:
        row = rows[name]
        assert row["status"] == "ok", row
        assert row["records"] == truth and row["records_match"], row
        assert row["wall_seconds"] > 0 and row["records_per_s"] > 0
        assert row["stats"]["api_calls"] > 0 and row["stats"]["rate_limited"] == 0
    assert rows["raw"]["ratio_to_limit"] == 1.0
    pipeline = rows["pipeline"]
    assert pipeline["tasks"] and all(t["peak_rss_mib"] > 0 for t in pipeline["tasks"])
    assert pipeline["task_peak_rss_mib"] == max(t["peak_rss_mib"] for t in pipeline["tasks"])
    assert set(pipeline["targets"]) == {"limit", "speedup", "memory", "dlt"}
    if has_dlt:
        assert pipeline["ratio_to_dlt"] is not None

    assert md.startswith("# Sync benchmark: smoke")
    assert "| items | latency | sink | contestant | records |" in md
    assert "## Targets (pipeline rows)" in md and "## Pipeline: where the time and memory go" in md
    assert "pending: no bulk Data Query path yet" in md
    for name in contestants:
        assert f"| sqlite | {name} | {truth:,} | yes |" in md
    assert "demo-secret" not in md + proc.stdout and "demo-secret" not in json.dumps(result)
