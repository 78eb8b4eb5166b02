"""The harness's results: ratios to the raw limit and to dlt, the issue's targets per row, markdown."""

from __future__ import annotations

from typing import Any

MB_PER_MIB = 1.048576
# The targets (issue 11).
LIMIT_RATIO_MAX = 1.5  # no added latency: pipeline wall / raw-limit wall, at 100k and 1M items
LIMIT_RATIO_FROM_ITEMS = 100_000
LATENCY_TARGET_S = 0.3  # the latency case: at 1M items, at least 6x faster than the single cursor
SPEEDUP_MIN = 6.0
SPEEDUP_ITEMS = 1_000_000
IN_FLIGHT_MAX = 40  # never more requests in flight than this, and zero 429s
MEMORY_MB_MAX = 500  # peak memory of any task at 1M items...
MEMORY_GROWTH_MAX = 0.20  # ...and within 20% of its value at 100k
MEMORY_ITEMS, MEMORY_BASE_ITEMS = 1_000_000, 100_000
# The bulk path's target: a first load of 1M items by Data Query export makes at least this many
# times fewer API calls than Object Query (the pipeline row of the same scenario and sink), and is faster.
BULK_CALLS_FACTOR_MIN = 20.0
BULK_ITEMS = 1_000_000
# A scenario's items are named by the scale asked for (10k, 100k, 1M), not the tenant's exact count.
TARGET_LABELS = {
    "limit": f"pipeline/limit ≤ {LIMIT_RATIO_MAX} at latency 0 (≥100k items)",
    "speedup": f"latency {LATENCY_TARGET_S}s at 1M: ≥{SPEEDUP_MIN:g}x the limit, ≤{IN_FLIGHT_MAX} in flight, no 429",
    "memory": f"task peak ≤ {MEMORY_MB_MAX} MB at 1M and ≤ +{MEMORY_GROWTH_MAX:.0%} of 100k",
    "dlt": "faster than dlt",
}
# The data_query rows' targets (a table of their own).
BULK_TARGET_LABELS = {
    "bulk": f"bulk first load at 1M: ≥{BULK_CALLS_FACTOR_MIN:g}x fewer API calls than Object Query, and faster",
    "dlt": "faster than dlt",
}
# The contestants that run the DAG (bench/contestant_pipeline.py): their peak MB is the task peak.
DAG_CONTESTANTS = ("pipeline", "data_query")


def _mb(mib: float | None) -> float | None:
    return None if mib is None else round(mib * MB_PER_MIB, 1)


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Each row's wall time over the raw limit's and dlt's in the same scenario (items, latency, sink)."""
    by_key = {(r["items_target"], r["latency_s"], r["sink"], r["contestant"]): r for r in rows}
    for r in rows:
        key = (r["items_target"], r["latency_s"], r["sink"])
        for other, field in (("raw", "ratio_to_limit"), ("dlt", "ratio_to_dlt")):
            o = by_key.get((*key, other))
            ok = r.get("wall_seconds") and o and o.get("wall_seconds") and r["status"] == o["status"] == "ok"
            r[field] = round(r["wall_seconds"] / o["wall_seconds"], 3) if ok else None


def _verdict(applies: bool, passed: bool | None, value: str) -> str:
    if passed is None:
        return f"— ({value})" if value else "—"
    word = ("pass" if passed else "FAIL") if applies else ("(pass)" if passed else "(fail)")
    return f"{word} ({value})" if value else word


def _dlt_verdict(r: dict[str, Any]) -> str:
    to_dlt = r.get("ratio_to_dlt")
    ok = r["status"] == "ok"
    return _verdict(True, None if to_dlt is None or not ok else to_dlt < 1, f"{to_dlt:.2f}x" if to_dlt else "")


def _bulk_verdict(r: dict[str, Any], pipeline: dict[str, Any] | None) -> str:
    """A data_query row against the pipeline row (Object Query) of its scenario and sink: at least
    BULK_CALLS_FACTOR_MIN times fewer API calls, and a shorter wall; judged at BULK_ITEMS items."""
    calls = (r.get("stats") or {}).get("api_calls")
    oq_calls = ((pipeline or {}).get("stats") or {}).get("api_calls")
    ok = r["status"] == "ok" and pipeline is not None and pipeline["status"] == "ok"
    if not ok or not calls or not oq_calls or not r.get("wall_seconds") or not pipeline.get("wall_seconds"):
        return _verdict(False, None, "")
    factor = oq_calls / calls
    wall_ratio = r["wall_seconds"] / pipeline["wall_seconds"]
    passed = factor >= BULK_CALLS_FACTOR_MIN and wall_ratio < 1
    value = f"{factor:.1f}x fewer calls ({calls:,} vs {oq_calls:,}), wall {wall_ratio:.2f}x"
    return _verdict(r["items_target"] >= BULK_ITEMS, passed, value)


def evaluate_targets(rows: list[dict[str, Any]]) -> None:
    """Pass/fail of each target on each pipeline and data_query row. A target outside the scale or
    latency it names is shown in parentheses for information: it is judged only where the issue sets it."""
    pipelines = {(r["items_target"], r["latency_s"], r["sink"]): r for r in rows if r["contestant"] == "pipeline"}
    for r in rows:
        if r["contestant"] == "data_query":
            pipeline = pipelines.get((r["items_target"], r["latency_s"], r["sink"]))
            r["targets"] = {"bulk": _bulk_verdict(r, pipeline), "dlt": _dlt_verdict(r)}
            continue
        if r["contestant"] != "pipeline":
            continue
        t: dict[str, str] = {}
        ok = r["status"] == "ok"
        lat0 = r["latency_s"] == 0
        ratio = r.get("ratio_to_limit")
        if lat0:
            applies = r["items_target"] >= LIMIT_RATIO_FROM_ITEMS
            passed = None if ratio is None or not ok else ratio <= LIMIT_RATIO_MAX
            t["limit"] = _verdict(applies, passed, f"{ratio:.2f}x" if ratio else "")
        else:
            t["limit"] = "n/a"
        if r["latency_s"] >= LATENCY_TARGET_S:
            speedup = 1 / ratio if ratio else None
            stats = r.get("stats") or {}
            in_flight, r429 = stats.get("max_requests_in_flight"), stats.get("rate_limited")
            passed = (
                None
                if speedup is None or not ok
                else speedup >= SPEEDUP_MIN and (in_flight or 0) <= IN_FLIGHT_MAX and not r429
            )
            value = f"{speedup:.1f}x, {in_flight} in flight, {r429} 429s" if speedup else ""
            t["speedup"] = _verdict(r["items_target"] >= SPEEDUP_ITEMS, passed, value)
        else:
            t["speedup"] = "n/a"
        peak = _mb(r.get("task_peak_rss_mib"))
        if peak is not None and ok:
            base = pipelines.get((MEMORY_BASE_ITEMS, r["latency_s"], r["sink"]))
            base_peak = _mb(base.get("task_peak_rss_mib")) if base and base["status"] == "ok" else None
            growth = (peak / base_peak - 1) if base_peak and r["items_target"] > MEMORY_BASE_ITEMS else None
            passed = peak <= MEMORY_MB_MAX and (growth is None or growth <= MEMORY_GROWTH_MAX)
            value = f"{peak:.0f} MB" + (f", {growth:+.0%} vs 100k" if growth is not None else "")
            t["memory"] = _verdict(r["items_target"] >= MEMORY_ITEMS, passed, value)
        else:
            t["memory"] = "—"
        t["dlt"] = _dlt_verdict(r)
        r["targets"] = t


def _items(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k" if n >= 1000 else str(n)


def _num(v: float | None, fmt: str = "{:,.1f}") -> str:
    return "—" if v is None else fmt.format(v)


def _targets_table(rows: list[dict[str, Any]], title: str, intro: str, labels: dict[str, str]) -> list[str]:
    """A "## Targets" section: a verdict per target (`labels`) for each row; nothing without rows."""
    if not rows:
        return []
    lines = ["", f"## {title}", "", intro, "",
             "| items | latency | sink | " + " | ".join(labels.values()) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in labels) + " |"]  # fmt: skip
    for r in rows:
        verdicts = " | ".join(r["targets"][k] for k in labels)
        lines.append(f"| {_items(r['items_target'])} | {r['latency_s']:g}s | {r['sink']} | {verdicts} |")
    return lines


def markdown(result: dict[str, Any]) -> str:
    rows = result["rows"]
    lines = [
        f"# Sync benchmark: {result['name']}",
        "",
        f"{result['when']} · {result['machine']} · Python {result['python']} · emulator concurrency limit "
        f"{result['emulator_concurrency']} · {result['note']}",
        "",
        "| items | latency | sink | contestant | records | = Zuora | wall s | records/s | peak MB | API calls "
        "| in flight | 429s | xlimit | xdlt |",
        "| --- | --- | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        stats = r.get("stats") or {}
        if r["status"] != "ok":
            reason = r.get("reason", r["status"])
            lines.append(
                f"| {_items(r['items_target'])} | {r['latency_s']:g}s | {r['sink']} | {r['contestant']} "
                f"| {reason} | | | | | | | | | |"
            )
            continue
        peak = r.get("task_peak_rss_mib") if r["contestant"] in DAG_CONTESTANTS else r.get("peak_rss_mib")
        lines.append(
            f"| {_items(r['items_target'])} | {r['latency_s']:g}s | {r['sink']} | {r['contestant']} "
            f"| {r['records']:,} | {'yes' if r['records_match'] else 'NO'} | {r['wall_seconds']:,.1f} "
            f"| {_num(r.get('records_per_s'), '{:,.0f}')} | {_num(_mb(peak), '{:,.0f}')} "
            f"| {_num(stats.get('api_calls'), '{:,}')} | {_num(stats.get('max_requests_in_flight'), '{}')} "
            f"| {_num(stats.get('rate_limited'), '{}')} | {_num(r.get('ratio_to_limit'), '{:.2f}')} "
            f"| {_num(r.get('ratio_to_dlt'), '{:.2f}')} |"
        )
    lines += _targets_table(
        [r for r in rows if r.get("targets") and r["contestant"] == "pipeline"],
        "Targets (pipeline rows)",
        "A verdict in parentheses is outside the scale or latency the issue sets that target for: "
        "shown for information, not judged.",
        TARGET_LABELS,
    )
    lines += _targets_table(
        [r for r in rows if r.get("targets") and r["contestant"] == "data_query"],
        "Targets (data_query rows)",
        "Against the pipeline row (Object Query) of the same scenario and sink; judged at 1M items, in "
        "parentheses elsewhere.",
        BULK_TARGET_LABELS,
    )
    pipes = [r for r in rows if r["contestant"] in DAG_CONTESTANTS and r["status"] == "ok"]
    if pipes:
        lines += [
            "",
            "## Pipeline: where the time and memory go",
            "",
            "| items | latency | sink | contestant | runner | wall s | task s | overhead s | most tasks at once "
            "| heaviest task (peak MB) | largest growth in a task MB | slowest task (s) |",
            "| --- | --- | --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | --- |",
        ]
        for r in pipes:
            tasks = r.get("tasks") or []
            runner = r.get("runner", "dag_test")  # results from before the executor runner: dag.test()
            busy = sum(t["seconds"] or 0 for t in tasks)
            # dag.test: wall - the tasks' seconds (its per-task cost); executor: wall - the time some task
            # was running (the scheduler's and executor's gaps between tasks).
            covered = _covered_seconds(tasks) if runner == "executor" else busy
            overhead = None if covered is None else r["wall_seconds"] - covered
            heavy = max((t for t in tasks if t.get("peak_rss_mib") is not None), key=lambda t: t["peak_rss_mib"],
                        default=None)  # fmt: skip
            heaviest = f"{_task_label(heavy)} ({_num(_mb(heavy['peak_rss_mib']), '{:,.0f}')})" if heavy else "—"
            slow = _slowest(tasks)
            at_once = r.get("max_parallel_tasks", 1 if runner == "dag_test" else None)
            lines.append(
                f"| {_items(r['items_target'])} | {r['latency_s']:g}s | {r['sink']} | {r['contestant']} | {runner} "
                f"| {r['wall_seconds']:,.1f} | {busy:,.1f} | {_num(overhead)} "
                f"| {_num(at_once, '{}')} | {heaviest} "
                f"| {_num(_mb(r.get('task_peak_growth_mib')), '{:,.0f}')} | {slow} |"
            )
    lines += ["", *[f"- {n}" for n in result.get("notes", [])]]
    return "\n".join(lines) + "\n"


def _task_label(task: dict[str, Any]) -> str:
    """task_id, with [map_index] for a mapped task instance."""
    return task["task_id"] if task.get("map_index", -1) < 0 else f"{task['task_id']}[{task['map_index']}]"


def _covered_seconds(tasks: list[dict[str, Any]]) -> float | None:
    """Seconds during which at least one task instance ran (the union of their start..end, from the
    executor runner's API timings); None without timings."""
    from datetime import datetime

    spans = sorted(
        (datetime.fromisoformat(t["start"]).timestamp(), datetime.fromisoformat(t["end"]).timestamp())
        for t in tasks
        if t.get("start") and t.get("end")
    )
    if not spans:
        return None
    total, (cur_start, cur_end) = 0.0, spans[0]
    for start, end in spans[1:]:
        if start > cur_end:
            total += cur_end - cur_start
            cur_start, cur_end = start, end
        else:
            cur_end = max(cur_end, end)
    return total + cur_end - cur_start


def _slowest(tasks: list[dict[str, Any]]) -> str:
    """The task id with the most seconds, its mapped instances added up."""
    total: dict[str, float] = {}
    for t in tasks:
        total[t["task_id"]] = total.get(t["task_id"], 0.0) + (t["seconds"] or 0)
    if not total:
        return "—"
    name = max(total, key=total.__getitem__)
    return f"{name} ({total[name]:,.1f})"


def merge(results: list[dict[str, Any]], name: str) -> dict[str, Any]:
    """Several harness results as one: a row of a later result replaces the row of an earlier one
    with the same items, latency, sink and contestant (a re-run of part of a matrix)."""
    rows: dict[tuple, dict[str, Any]] = {}
    scenarios: dict[tuple, dict[str, Any]] = {}
    notes: list[str] = []
    for result in results:
        for s in result["scenarios"]:
            scenarios[(s["items_target"], s["latency_s"])] = s
        for r in result["rows"]:
            r = {k: v for k, v in r.items() if k not in ("ratio_to_limit", "ratio_to_dlt", "targets")}
            r["source"] = result["name"]
            rows[(r["items_target"], r["latency_s"], r["sink"], r["contestant"])] = r
        notes += [n for n in result.get("notes", []) if n not in notes]
    order = {c: i for i, c in enumerate(("raw", "pipeline", "dlt", "data_query"))}
    merged = sorted(
        rows.values(), key=lambda r: (r["items_target"], r["latency_s"], r["sink"], order.get(r["contestant"], 9))
    )
    add_ratios(merged)
    evaluate_targets(merged)
    last = results[-1]
    return {
        **{k: last[k] for k in ("benchmark", "machine", "python", "emulator_concurrency")},
        "name": name,
        "when": last["when"],
        "note": "merged from "
        + ", ".join(r["name"] for r in results)
        + " (a later file's row replaces an earlier one's)",
        "complete": all(r.get("complete", True) for r in results),
        "scenarios": [scenarios[k] for k in sorted(scenarios)],
        "rows": merged,
        "notes": notes,
    }


def main(argv: list[str] | None = None) -> None:
    """`python -m bench.report --name NAME a.json b.json ...`: merge results and write NAME.json/.md beside them."""
    import argparse
    import json
    from pathlib import Path

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--name", required=True)
    parser.add_argument("results", type=Path, nargs="+")
    args = parser.parse_args(argv)
    result = merge([json.loads(p.read_text()) for p in args.results], args.name)
    out = args.results[0].parent / f"{args.name}.json"
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    md = markdown(result)
    out.with_suffix(".md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
