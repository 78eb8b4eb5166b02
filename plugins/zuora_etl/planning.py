"""What a sync run reads: the mode and each object's windows, from Variables, params or the
run's data interval. Pure functions over plain values; the DAG's `plan` task only gathers inputs."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from .families import Family
from .windows import Window, hwm_variable, incremental_window, parse_instant, range_window

SETTLE_VARIABLE = "zuora_etl_settle_seconds"
INITIAL_WATERMARK_VARIABLE = "zuora_etl_initial_watermark"


def plan_run(
    family: Family,
    params: dict,
    run_type: str,
    interval: tuple[datetime | None, datetime | None],
    now: datetime,
    get_variable: Callable[[str], str | None],
) -> dict:
    """`{"mode", "objects": {name: {"windows": [...], "watermark", "by_parent"}}}`.

    - `start`/`end` params: a backfill over that range; watermarks stay where they are.
    - a backfill run (`airflow dags backfill`): its data interval, likewise.
    - otherwise: from each object's watermark (minus the overlap) to now minus the settle lag.
    `dry_run` reads and transforms but loads, marks and advances nothing.
    """
    settle = get_variable(SETTLE_VARIABLE)
    settle_s = int(settle) if settle not in (None, "") else family.settle_seconds
    initial = get_variable(INITIAL_WATERMARK_VARIABLE) or None
    if initial:
        parse_instant(initial)  # a bad Variable fails the plan, loudly, before anything is read
    fixed: Window | None = None
    mode = "sync"
    if params.get("start"):
        fixed, mode = range_window(str(params["start"]), params.get("end") or None, now), "backfill"
    elif params.get("end"):
        raise ValueError("'end' needs a 'start'")
    elif run_type == "backfill" and interval[0] and interval[1] and interval[0] < interval[1]:
        fixed, mode = Window(parse_instant(interval[0]), parse_instant(interval[1])), "backfill"
    if params.get("dry_run"):
        mode = "dry_run"
    objects = {}
    for o in family.objects:
        if o.parent:
            objects[o.name] = {"windows": [], "watermark": None, "by_parent": o.parent.object}
            continue
        watermark = get_variable(hwm_variable(family.family, o.name))
        window = fixed or incremental_window(watermark, initial, now, family.overlap_seconds, settle_s)
        windows = window.split(family.slices) if window else []
        objects[o.name] = {"windows": [w.to_dict() for w in windows], "watermark": watermark, "by_parent": None}
    return {"family": family.family, "mode": mode, "objects": objects}


def should_advance(plan: dict) -> bool:
    return plan["mode"] == "sync"


def next_watermark(current: str | None, newest: str | None, windows: list[dict]) -> str | None:
    """Where an object's watermark moves after a committed load: to the newest updatedDate read,
    but never past the end of the window that was read (a record stamped in the future, 2099 from
    a misconfigured source, must not make every later window empty) and never backwards."""
    if not newest:
        return current
    target, value = newest, parse_instant(newest)
    ends = [parse_instant(w["hi"]) for w in windows]
    if ends and value > max(ends):
        target, value = max(ends).isoformat(), max(ends)
    if current is not None and value <= parse_instant(current):
        return current
    return target
