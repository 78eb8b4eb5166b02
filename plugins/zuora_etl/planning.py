"""What a sync run reads: the mode and each object's windows, from Variables, params or the
run's data interval. Pure functions over plain values; the DAG's `plan` task only gathers inputs."""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import NamedTuple

from croniter import croniter

from .families import Family
from .manifests import LoadResult, Mode, Moved, ObjectPlan, RunPlan, WindowDict
from .settings import (
    BULK_MIN_RECORDS,
    BULK_ROWS_PER_EXPORT,
    FIRST_LOAD_SLICES,
    FIRST_LOAD_SPAN_DAYS,
    INITIAL_WATERMARK_VARIABLE,
    MAX_COALESCED_RUNS,
    MAX_IN_FLIGHT_PER_PROCESS,
    MAX_SLICES,
    SETTLE_VARIABLE,
    SLICE_TARGET_ROWS,
    SUBSLICE_TARGET_ROWS,
    WINDOWS_PER_THREAD,
)
from .windows import Window, hwm_variable, incremental_window, parse_instant, range_window


def slice_count(window: Window, density: float | None, fixed: int | None = None, first: datetime | None = None) -> int:
    """How many mapped slices read `window`: `fixed` when asked for (a param or the family's
    `slices`), else by the expected volume (records per second of window, from recent runs or a
    probe of Zuora; `first`: the window's first record), else, with neither, a few for a long
    window."""
    if fixed and fixed > 0:
        return int(fixed)
    span = (window.hi - window.split_origin(first)).total_seconds()
    if density is None:
        return FIRST_LOAD_SLICES if span > FIRST_LOAD_SPAN_DAYS * 86400 else 1
    return max(1, min(MAX_SLICES, math.ceil(density * span / SLICE_TARGET_ROWS)))


class Counted(NamedTuple):
    """What Zuora counted in a window (a Data Query count): the object's records, the total with
    its children in the family (an invoice's items), the oldest updatedDate (None when empty), and
    the object's records per minute ((epoch minute, records)), by which the window is split."""

    records: int
    total: int
    first: datetime | None
    minutes: tuple[tuple[int, int], ...] = ()


def thread_count(window: Window, density: float | None, slices: int, first: datetime | None = None) -> int:
    """Threads of each mapped extract: its slice is cut into sub-slices of about SUBSLICE_TARGET_ROWS
    expected records, read at once, at most MAX_IN_FLIGHT_PER_PROCESS; one without an estimate."""
    if not density or slices < 1:
        return 1
    per_slice = density * (window.hi - window.split_origin(first)).total_seconds() / slices
    return max(1, min(MAX_IN_FLIGHT_PER_PROCESS, math.ceil(per_slice / SUBSLICE_TARGET_ROWS)))


def reads_in_bulk(bulk_param: str, counted: Counted | None) -> bool:
    """Whether a window is read by Data Query export: always, never, or (auto) when Zuora counted
    at least BULK_MIN_RECORDS records in it (object and children)."""
    if bulk_param in ("always", "never"):
        return bulk_param == "always"
    return counted is not None and counted.total >= BULK_MIN_RECORDS


def plan_run(
    family: Family,
    params: dict,
    run_type: str,
    interval: tuple[datetime | None, datetime | None],
    now: datetime,
    get_variable: Callable[[str], str | None],
    *,
    run_id: str = "",
    staging_dir: str = "",
    density: Callable[[str], float | None] = lambda _: None,
    chosen_interval: bool = False,
    backfill_end: Callable[[], datetime | None] | None = None,
    probe: Callable[[str, Window], tuple[datetime | None, float | None]] | None = None,
    count: Callable[[str, Window], Counted | None] | None = None,
) -> RunPlan:
    """What each object reads in this run.

    - `start`/`end` params: a backfill over that range; watermarks stay where they are.
    - a backfill run (Airflow's backfill), or a manual run given a data interval in the trigger
      form (`chosen_interval`): that interval, likewise.
    - otherwise: from each object's watermark (minus the overlap) to now minus the settle lag.
    `dry_run` reads and transforms, then reports what loading would change; nothing is written.
    A window is split into slices (one mapped extract each), see `slice_count`.

    A long window with no recent runs to estimate from is counted (`count`: a Data Query count of
    the object and its children, cheap) or else probed (`probe`: one Object Query page). Param
    `bulk` decides how it is read: `always` by Data Query export, `never` by Object Query, `auto`
    (default) by export when the count reaches BULK_MIN_RECORDS. An export is one job per object
    and slice, a slice per BULK_ROWS_PER_EXPORT counted records; the object's children follow their
    parent's way.
    """
    bulk_param = params.get("bulk") or "auto"
    settle = get_variable(SETTLE_VARIABLE)
    settle_s = int(settle) if settle not in (None, "") else family.settle_seconds
    initial = get_variable(INITIAL_WATERMARK_VARIABLE) or None
    if initial:
        parse_instant(initial)  # a bad Variable fails the plan, loudly, before anything is read
    fixed, how = requested_range(params, run_type, interval, now, chosen_interval)
    mode: Mode = "backfill" if fixed else "sync"
    if fixed and how == "backfill run" and backfill_end is not None:
        end = backfill_end()  # one run of the chain reads it all (backfill_block)
        if end is None:
            mode, how = "covered", "an earlier run of this backfill reads this interval"
        elif end > fixed.hi:
            fixed, how = Window(fixed.lo, end), f"backfill run, reading the runs up to {end.isoformat()} too"
    if params.get("dry_run"):
        mode = "dry_run"
    roots = [o for o in family.objects if not o.parent]
    watermarks = {o.name: get_variable(hwm_variable(family.family, o.name)) for o in roots}
    windows_of: dict[str, Window | None] = {}
    for o in roots:
        own = fixed or incremental_window(watermarks[o.name], initial, now, family.overlap_seconds, settle_s)
        windows_of[o.name] = None if mode == "covered" else own
    densities = {o.name: density(o.name) for o in roots}
    # A first load or a long backfill: Zuora counts each object's window, all at once. Always, even
    # with history: recent runs' density says little about a window many times as long (an empty
    # day's backfill before a first load would plan the whole history as one cursor).
    to_count = [n for n, w in windows_of.items() if w and w.is_long()]
    counts = _all_at_once(count, [(n, windows_of[n]) for n in to_count]) if count else {}
    objects: dict[str, ObjectPlan] = {}
    for o in family.objects:
        if o.parent:
            objects[o.name] = {"windows": [], "watermark": None, "by_parent": o.parent.object, "id_parts": []}
            if objects.get(o.parent.object, {}).get("bulk"):
                objects[o.name]["bulk"] = True
            continue
        watermark, window = watermarks[o.name], windows_of[o.name]
        fixed_slices = params.get("slices") or family.slices
        expected, first = densities[o.name], None
        counted = counts.get(o.name)
        if counted is not None:  # this window's own count, rather than an extrapolation from others
            first = counted.first
            expected = counted.records / max(1.0, (window.hi - window.split_origin(first)).total_seconds())
        if window and expected is None and not fixed_slices and probe and window.is_long():
            first, expected = probe(o.name, window)  # no count: one page tells something
        bulk = bool(window) and reads_in_bulk(bulk_param, counted)
        if bulk:  # one export per slice, each under Data Query's output limit
            slices = max(1, math.ceil(counted.total / BULK_ROWS_PER_EXPORT)) if counted else 1
        else:
            slices = slice_count(window, expected, fixed_slices, first) if window else 0
        threads = 1 if bulk or fixed_slices or not window else thread_count(window, expected, slices, first)
        pieces = slices * threads * (WINDOWS_PER_THREAD if threads > 1 else 1)
        windows = [w.to_dict() for w in _split(window, pieces, first, counted)] if window else []
        objects[o.name] = {"windows": windows, "watermark": watermark, "by_parent": None, "id_parts": []}
        if threads > 1:
            objects[o.name]["tasks"] = slices
        if bulk:
            objects[o.name]["bulk"] = True
        if counted is not None:
            objects[o.name]["expected"] = counted.total
    plan: RunPlan = {"family": family.family, "mode": mode, "run_id": run_id, "staging_dir": staging_dir,
                     "objects": objects, "force": False}  # fmt: skip
    if how:
        plan["backfill"] = how
    return plan


def _all_at_once(count: Callable[[str, Window], Counted | None], asks: list[tuple[str, Window]]) -> dict:
    """Each (object, window)'s count, asked in threads: a count is a Data Query job (submit, polls,
    result) of a second or more, and a family's objects are independent."""
    if len(asks) <= 1:
        return {name: count(name, window) for name, window in asks}
    with ThreadPoolExecutor(max_workers=len(asks), thread_name_prefix="count") as pool:
        return dict(zip([n for n, _ in asks], pool.map(lambda ask: count(*ask), asks), strict=True))


def _split(window: Window, pieces: int, first: datetime | None, counted: Counted | None) -> list[Window]:
    """A window's slices: of equal volume where Zuora counted it minute by minute, else of equal time."""
    if counted is not None and counted.minutes:
        return window.split_by_counts(counted.minutes, pieces)
    return window.split(pieces, first)


def requested_range(
    params: dict,
    run_type: str,
    interval: tuple[datetime | None, datetime | None],
    now: datetime,
    chosen_interval: bool = False,
) -> tuple[Window | None, str | None]:
    """The fixed range a run was asked to read, and how it was asked; (None, None) for a sync.

    Raises ValueError, naming the fix, for a range that cannot be read: a `start` that is not an
    ISO date, an `end` without `start`, or `start`/`end` typed into Airflow's Backfill dialog
    (every run of the backfill would read the whole range again)."""
    start, end = params.get("start") or None, params.get("end") or None
    if end and not start:
        raise ValueError("'end' needs a 'start' (an ISO date such as 2026-06-01, or a datetime)")
    if start and run_type == "backfill":
        raise ValueError(
            "this run belongs to an Airflow backfill, which already gives each run its own interval; "
            "'start'/'end' would make every run of it read the whole range again. Either trigger one run "
            "with 'start'/'end' (fastest), or run the backfill without them."
        )
    if start:
        return range_window(str(start), str(end) if end else None, now), "params"
    lo, hi = interval
    if lo and hi and lo < hi and (run_type == "backfill" or chosen_interval):
        return Window(parse_instant(lo), parse_instant(hi)), "backfill run" if run_type == "backfill" else "interval"
    return None, None


def slice_groups(obj_plan: ObjectPlan) -> list[list[WindowDict]]:
    """An object's windows as the groups its mapped extracts read: `tasks` groups, or one window
    each; `[[]]` when there is none (one extract that reads nothing). Windows are dealt round-robin
    (task i reads windows i, i + tasks, ...): a tenant's records crowd toward recent months (the
    last eighth of the demo tenant's history holds 12 times the first's), so contiguous groups
    would leave the newest task with most of the work."""
    windows = list(obj_plan["windows"])
    tasks = obj_plan.get("tasks") or len(windows)
    if not windows:
        return [[]]
    return [windows[i::tasks] for i in range(tasks)]


def should_advance(plan: RunPlan) -> bool:
    return plan["mode"] == "sync"


def next_watermark(current: str | None, newest: str | None, windows: list[WindowDict]) -> str | None:
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


def advance_watermarks(
    plan: RunPlan,
    loads: dict[str, LoadResult | None],
    get_variable: Callable[[str], str | None],
    set_variable: Callable[[str, str], None],
) -> Moved:
    """Move each windowed object's watermark to the newest updatedDate its committed load read
    (see `next_watermark`); only a sync moves watermarks."""
    if not should_advance(plan):
        return {}
    moved: Moved = {}
    for name, obj_plan in plan["objects"].items():
        if obj_plan["by_parent"] or name not in loads:
            continue
        load = loads[name]
        variable = hwm_variable(plan["family"], name)
        current = get_variable(variable)
        target = next_watermark(current, load and load.get("max_updated"), obj_plan["windows"])
        if target is not None and target != current:
            set_variable(variable, target)
            moved[name] = {"from": current, "to": target}
    return moved


BACKFILL_RUN_PREFIX = "backfill__"


def backfill_block(
    interval: tuple[datetime, datetime],
    schedule: str,
    count_runs: Callable[[list[str]], int],
    covered: Callable[[datetime, datetime], bool] = lambda lo, hi: True,
    limit: int = MAX_COALESCED_RUNS,
) -> datetime | None:
    """The end of the range this run of an Airflow backfill reads, or None when an earlier run of
    the same backfill reads it.

    Airflow's Backfill dialog makes one run per schedule interval (721 for a month of an hourly
    DAG); each would pay a whole run's fixed cost for an hour of records. Instead the first run of
    each unbroken chain of backfill runs (the leader: no backfill run ends where it starts) reads
    the whole chain in one range, split into slices; the others (followers) find a leader before
    them and read nothing. `count_runs` counts the existing runs among given run ids (Airflow's
    `get_dr_count`); all runs of a backfill exist from its start, so the chain is known.

    A run before this one may belong to an earlier backfill (June 1-2 done, now June 2-3): a run is
    a follower only when a leader recorded a range that `covered` says holds its interval;
    otherwise it leads. Two runs that both lead read some records twice, never none."""
    start, end = (parse_instant(v) for v in interval)
    if count_runs([_backfill_run_id(start)]) and covered(start, end):
        return None
    ticks = croniter(schedule, end)
    successors = [_backfill_run_id(ticks.get_next(datetime)) for _ in range(limit)]
    # The longest prefix of successors that all exist: gallop (1, 2, 4... ids per call) then halve,
    # about 2 log2(n) small calls for a chain of n.
    lo, step = 0, 1
    while lo + step <= limit and count_runs(successors[lo : lo + step]) == step:
        lo, step = lo + step, step * 2
    hi = min(limit, lo + step - 1)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_runs(successors[lo:mid]) == mid - lo:
            lo = mid
        else:
            hi = mid - 1
    return parse_instant(successors[lo - 1].removeprefix(BACKFILL_RUN_PREFIX)) if lo else end


def _backfill_run_id(run_after: datetime) -> str:
    """The id Airflow gives the backfill run of the interval ending at `run_after`."""
    return f"{BACKFILL_RUN_PREFIX}{run_after.astimezone(UTC).isoformat()}"
