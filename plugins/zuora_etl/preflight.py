"""Preflight: before the first real sync, ask the tenant whether every family can be read as configured.

For the connection, a token. For every family and object, ONE record (`pageSize=1`, one page)
with exactly the fields and filters the sync will send: the mapping's fields (plus
`transferredToAccounting` for objects that are flagged, and the parent key for objects read by
their parent), the family's filters, the window filters (`updatedDate.GE/LT` over the last day) or
the parent filter (`<key>.IN:[<a zero id>]`), and `sort[]=updatedDate.ASC`. A refusal is narrowed
down with a few more calls: `id` alone (is the object enabled? is a filter refused?), then each field
alone (which fields does the tenant lack?). Finally the tenant's rate limit, from the last answer's
headers, against the calls the families' schedules need per day. For a family whose sink is a REST
API (connection type `http`): one request with its credentials, and every object's endpoint file
checked against its mapping; no document is sent.

Pure logic fed a `ZuoraHook` and the family models: the DAG `zuora_preflight` and the command line
(`python -m zuora_etl.preflight`) print the same table. Nothing secret is ever part of a report.
"""

from __future__ import annotations

import argparse
import logging
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from croniter import croniter

from . import conditions
from .catalog import get_object, is_custom
from .families import Family, FamilyObject, families_dir, load_families, load_family
from .hooks.zuora import ZuoraApiError, ZuoraHook
from .mapping import cached_mapping, mappings_dir
from .pipeline import extraction_fields

log = logging.getLogger(__name__)

OK = "ok"
REFUSED = "refused"
MISSING_CUSTOM_FIELDS = "missing custom fields"
NOT_ENABLED = "not enabled"
MAPPING_INVALID = "mapping invalid"
FAMILY_INVALID = "family invalid"  # a family file that does not validate: no object of it can be checked
TARGET_REFUSED = "target refused"  # a REST target did not accept the connection's credentials, or did not answer
ENDPOINT_INVALID = "endpoint invalid"  # an object a REST target receives has no usable endpoint file

# The window asked for: one day back from now. Any window the sync uses gets the same answer about
# fields and filters; a short one keeps the probe cheap on a large tenant.
PROBE_WINDOW = timedelta(days=1)
ZERO_ID = "0" * 32  # a well-formed id that matches nothing: the parent filter's shape, no data
# Zuora refuses an unknown object, field or filter with these statuses (400 for fields and filters;
# 403/404 are how an object the tenant has not enabled may come back). Others are not diagnosed.
REFUSAL_STATUSES = {400, 403, 404}
# Zuora's documented daily limits per tier, keyed by the per-minute limit that identifies the tier
# (ZUORA_API.md "Limits"): the headers give only the minute's quota, and the days are not 1440 minutes
# of it (an API sandbox allows 2,500 a minute but 10,000 a day).
DAILY_LIMIT_BY_MINUTE_LIMIT = {
    50_000: (27_000_000, "production or central sandbox"),
    12_500: (50_000, "developer sandbox"),
    2_500: (10_000, "API sandbox"),
}
# Runs per day are averaged over a week so that weekday-only or weekly crons count right.
SCHEDULE_SAMPLE_DAYS = 7


@dataclass(frozen=True)
class CheckRow:
    """One object of one family: can the sync read it as configured?"""

    family: str
    object: str
    status: str  # OK, REFUSED, MISSING_CUSTOM_FIELDS, NOT_ENABLED, MAPPING_INVALID, FAMILY_INVALID
    detail: str = ""  # Zuora's message, or what the diagnosis found

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass(frozen=True)
class RateLimitCheck:
    """The tenant's limits (from the last answer's headers) against the calls the schedules need."""

    limit_per_minute: int | None
    remaining: int | None
    concurrency_limit: int | None
    daily_limit: int | None
    daily_limit_basis: str  # how the daily limit was found
    calls_per_day: int  # at least this many calls a day for the configured schedules
    calls_by_family: dict[str, int]

    @property
    def exceeded(self) -> bool:
        return self.daily_limit is not None and self.calls_per_day > self.daily_limit

    def line(self) -> str:
        need = (
            f"the schedules need at least {self.calls_per_day:,} calls/day ("
            + ", ".join(f"{k} {v:,}" for k, v in self.calls_by_family.items())
            + ")"
        )
        if self.limit_per_minute is None:
            return f"Rate limit: unknown (Zuora sent no RateLimit-Limit header); {need}"
        limits = f"Rate limit: {self.limit_per_minute:,} calls/min"
        if self.remaining is not None:
            limits += f" ({self.remaining:,} left this minute)"
        if self.daily_limit is not None:
            limits += f", {self.daily_limit:,} calls/day ({self.daily_limit_basis})"
        if self.concurrency_limit is not None:
            limits += f", {self.concurrency_limit} Object Query calls in flight"
        verdict = (
            f"EXCEEDS the daily limit by {self.calls_per_day - (self.daily_limit or 0):,}: "
            "lengthen schedules or ask Zuora for a higher tier"
            if self.exceeded
            else f"{100 * self.calls_per_day / self.daily_limit:.2g}% of the daily limit"
            if self.daily_limit
            else "no daily limit known"
        )
        return f"{limits}; {need}: {verdict}"


@dataclass
class PreflightReport:
    conn_id: str
    base_url: str | None
    connection_ok: bool
    connection_detail: str
    rows: list[CheckRow] = field(default_factory=list)
    rate: RateLimitCheck | None = None
    api_calls: int = 0

    @property
    def problems(self) -> list[CheckRow]:
        return [r for r in self.rows if not r.ok]

    @property
    def ok(self) -> bool:
        return self.connection_ok and not self.problems and not (self.rate and self.rate.exceeded)

    def connection_line(self) -> str:
        where = f" ({self.base_url})" if self.base_url else ""
        state = "ok" if self.connection_ok else "FAILED"
        return f"Connection {self.conn_id}{where}: {state}: {self.connection_detail}"

    def summary(self) -> str:
        """One line for a failure message: what is wrong, by family and object."""
        if not self.connection_ok:
            return self.connection_line()
        parts = [f"{r.family}.{r.object}: {r.status}" for r in self.problems]
        if self.rate and self.rate.exceeded:
            parts.append(f"rate limit: {self.rate.calls_per_day:,} calls/day needed, {self.rate.daily_limit:,} allowed")
        if not parts:
            return f"preflight ok: {len(self.rows)} objects readable"
        return f"preflight found {len(parts)} problems: " + "; ".join(parts)

    def render(self) -> str:
        """The report as text: connection line, table, rate-limit line, verdict."""
        lines = [self.connection_line()]
        if self.rows:
            head = ("family", "object", "status", "detail")
            cells = [head, *((r.family, r.object, r.status, r.detail) for r in self.rows)]
            widths = [max(len(c[i]) for c in cells) for i in range(3)]
            for i, c in enumerate(cells):
                lines.append("  ".join(v.ljust(w) for v, w in zip(c[:3], widths, strict=True)) + "  " + c[3])
                if i == 0:
                    lines.append("  ".join("-" * w for w in widths) + "  " + "-" * 6)
        if self.rate:
            lines.append(self.rate.line())
        if not self.connection_ok:
            lines.append("PROBLEMS: no token, so no family was checked: fix the connection first")
        else:
            lines.append(f"{'OK' if self.ok else 'PROBLEMS'}: {self.summary()} ({self.api_calls} API calls)")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        """A small JSON-able form (XCom): no record data, no secret."""
        return {
            "ok": self.ok,
            "connection": self.connection_line(),
            "rows": [asdict(r) for r in self.rows],
            "rate_limit": self.rate.line() if self.rate else None,
            "summary": self.summary(),
        }


# ---------- probing ----------


def probe_filters(family_object: FamilyObject, now: datetime) -> tuple[list[str], list[str]]:
    """(the filters that say how the object is read, the family's own filters): a window over the
    last day by updatedDate, or a parent filter with a zero id, as the sync would send them."""
    if family_object.parent:
        base = [f"{family_object.parent.key}.IN:[{ZERO_ID}]"]
    else:
        lo = now - PROBE_WINDOW
        base = [f"updatedDate.GE:{lo:%Y-%m-%dT%H:%M:%SZ}", f"updatedDate.LT:{now:%Y-%m-%dT%H:%M:%SZ}"]
    return base, list(family_object.selection)


def probe(hook: ZuoraHook, endpoint: str, fields: Iterable[str], filters: Iterable[str]) -> None:
    """One page of one record with these fields and filters; raises ZuoraApiError when refused."""
    params = [("pageSize", "1"), ("sort[]", "updatedDate.ASC"), ("fields[]", ",".join(fields))]
    params += [("filter[]", f) for f in filters]
    hook.request("GET", f"/object-query/{endpoint}", params=params)


def _refused(exc: ZuoraApiError) -> bool:
    return exc.status in REFUSAL_STATUSES


def _reason(exc: ZuoraApiError) -> str:
    """Zuora's own message, without our method/path prefix and request id suffix."""
    text = str(exc)
    match = re.search(r"HTTP \d+ code \S+: (.*?)(?: \(request [^)]*\))?$", text)
    return match.group(1) if match else text


def _try(hook: ZuoraHook, endpoint: str, fields: Iterable[str], filters: Iterable[str]) -> ZuoraApiError | None:
    """None when accepted; the refusal otherwise. Anything else (5xx after retries, no answer) raises."""
    try:
        probe(hook, endpoint, fields, filters)
    except ZuoraApiError as exc:
        if _refused(exc):
            return exc
        raise
    return None


def requested_fields(family_object: FamilyObject, mappings: Path | None = None) -> list[str]:
    """The fields the sync requests for this object (raises ValueError when its mapping is invalid)."""
    mapping = cached_mapping(family_object.mapping_name, mappings)
    if mapping.object != family_object.name:
        raise ValueError(f"mapping {family_object.mapping_name} maps {mapping.object}, not {family_object.name}")
    extra = ["transferredToAccounting"] if family_object.mark_transferred else []
    extra += conditions.fields(family_object.conditions)
    if family_object.parent:
        extra.append(family_object.parent.key)  # the extract operator reads the parent key too
    return extraction_fields(mapping, extra)


def check_object(
    hook: ZuoraHook, family: Family, family_object: FamilyObject, now: datetime, mappings: Path | None = None
) -> CheckRow:
    """Ask for one record as the sync would; on a refusal, find out why with a few more calls."""
    name = family_object.name

    def row(status: str, detail: str = "") -> CheckRow:
        return CheckRow(family.family, name, status, detail)

    try:
        fields = requested_fields(family_object, mappings)
    except ValueError as exc:
        return row(MAPPING_INVALID, str(exc))
    endpoint = get_object(name).endpoint
    base, own = probe_filters(family_object, now)
    try:
        first = _try(hook, endpoint, fields, base + own)
    except ZuoraApiError as exc:
        return row(REFUSED, f"no usable answer: {_reason(exc)}")
    if first is None:
        return row(OK)
    try:
        return _diagnose(hook, endpoint, fields, base, own, first, row)
    except ZuoraApiError as exc:
        return row(REFUSED, f"{_reason(first)}; diagnosis stopped: {_reason(exc)}")


def _diagnose(
    hook: ZuoraHook,
    endpoint: str,
    fields: list[str],
    base: list[str],
    own: list[str],
    first: ZuoraApiError,
    row: Callable[..., CheckRow],
) -> CheckRow:
    if _try(hook, endpoint, ["id"], base + own) is not None:
        # Not the fields. The object itself, or one of the family's filters?
        plain = _try(hook, endpoint, ["id"], base)
        if plain is not None:
            return row(NOT_ENABLED, f"the tenant refuses {endpoint} (is it enabled?): {_reason(plain)}")
        bad = []
        for f in own:
            refusal = _try(hook, endpoint, ["id"], [*base, f])
            if refusal is not None:
                bad.append(f"{f} ({_reason(refusal)})")
        what = f"filters refused: {', '.join(bad)}" if bad else "the family's filters are refused together"
        return row(REFUSED, f"{what}: {_reason(first)}")
    refused: dict[str, str] = {}
    for name in fields:
        if name == "id":
            continue
        refusal = _try(hook, endpoint, ["id", name], base + own)
        if refusal is not None:
            refused[name] = _reason(refusal)
    custom = [f for f in refused if is_custom(f)]
    invalid = [f for f in refused if not is_custom(f)]
    parts = []
    if invalid:
        parts.append(f"invalid fields: {', '.join(invalid)} ({refused[invalid[0]]})")
    if custom:
        parts.append(f"custom fields the tenant lacks: {', '.join(custom)} ({refused[custom[0]]})")
    if not parts:
        return row(REFUSED, f"every field alone is accepted, all together refused: {_reason(first)}")
    return row(REFUSED if invalid else MISSING_CUSTOM_FIELDS, "; ".join(parts))


# ---------- rate limit ----------


def runs_per_day(schedule: str | None, start: datetime | None = None) -> float:
    """Average runs a day of a cron schedule (None: manual only)."""
    if not schedule:
        return 0.0
    start = start or datetime(2025, 1, 6, tzinfo=UTC)  # a Monday: weekday crons average over a full week
    end = start + timedelta(days=SCHEDULE_SAMPLE_DAYS)
    it = croniter(schedule, start - timedelta(seconds=1))
    runs = 0
    while it.get_next(datetime) < end:
        runs += 1
    return runs / SCHEDULE_SAMPLE_DAYS


def calls_per_run(family: Family) -> int:
    """At least one call per object (per time slice for objects read by window: an incremental
    window is one slice unless the family fixes more), plus, per flagged object, one marking call
    (one action/update per 50 documents, or one PUT per memo) and one to read the flagged back."""
    calls = 0
    for o in family.objects:
        calls += 1 if o.parent else (family.slices or 1)
        calls += 2 if o.mark_transferred else 0
    return calls


def _int(value: Any) -> int | None:
    """The first integer of a header value (`50000`, or a structured `50000;w=60`)."""
    match = re.match(r"\s*(\d+)", str(value)) if value is not None else None
    return int(match.group(1)) if match else None


def rate_limit_check(headers: Mapping[str, Any], families: Iterable[Family]) -> RateLimitCheck:
    """The tenant's limits from one answer's headers against the schedules' daily need."""
    headers = {str(k).lower(): v for k, v in (headers or {}).items()}
    per_minute = _int(headers.get("ratelimit-limit"))
    daily, basis = None, ""
    if per_minute is not None:
        if per_minute in DAILY_LIMIT_BY_MINUTE_LIMIT:
            daily, tier = DAILY_LIMIT_BY_MINUTE_LIMIT[per_minute]
            basis = f"Zuora's {tier} tier"
        else:
            daily, basis = per_minute * 24 * 60, "assumed: the minute's limit all day"
    by_family = {f.family: round(runs_per_day(f.schedule) * calls_per_run(f)) for f in families}
    return RateLimitCheck(
        limit_per_minute=per_minute,
        remaining=_int(headers.get("ratelimit-remaining")),
        concurrency_limit=_int(headers.get("concurrency-limit-limit")),
        daily_limit=daily,
        daily_limit_basis=basis,
        calls_per_day=sum(by_family.values()),
        calls_by_family=by_family,
    )


# ---------- the whole check ----------


def load_families_or_rows(directory: Path | None = None) -> tuple[list[Family], list[CheckRow]]:
    """Every family that validates, and a row for each family file that does not."""
    directory = directory or families_dir()
    try:
        return list(load_families(directory)), []
    except ValueError:
        pass
    families, rows = [], []
    for path in sorted(directory.glob("*.yaml")):
        try:
            families.append(load_family(path))
        except ValueError as exc:
            rows.append(CheckRow(path.stem, "-", FAMILY_INVALID, str(exc)))
    return families, rows


def run_preflight(
    hook: ZuoraHook,
    families: list[Family] | None = None,
    mappings: Path | None = None,
    now: datetime | None = None,
    family_rows: list[CheckRow] | None = None,
) -> PreflightReport:
    """The connection, then every family's objects, then the rate limit; never raises for what it finds."""
    if families is None:
        families, family_rows = load_families_or_rows()
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    mappings = mappings or mappings_dir()
    ok, detail = hook.test_connection()  # a fresh token; the message never holds the secret
    report = PreflightReport(hook.zuora_conn_id, getattr(hook, "base_url", None), ok, detail)
    if not ok:
        return report
    report.rows.extend(family_rows or [])
    for family in families:
        for family_object in family.objects:
            report.rows.append(check_object(hook, family, family_object, now, mappings))
    report.rows.extend(check_targets(families))
    report.rate = rate_limit_check(hook.last_headers, families)
    report.api_calls = hook.api_calls
    return report


def check_targets(families: Iterable[Family]) -> list[CheckRow]:
    """A row per family whose sink connection is a REST API: does it answer these credentials
    (one request, shared by the families of one connection), and has every object it receives an
    endpoint file whose payload reads only mapped columns? A SQL sink, or a connection that does
    not exist (the sync names it), adds nothing."""
    from airflow.sdk.exceptions import AirflowNotFoundException

    from .hooks.erp import ErpHook
    from .sinks import is_http
    from .sinks.base import SinkConfigError
    from .sinks.http import HttpSink

    rows: list[CheckRow] = []
    answers: dict[str, tuple[bool, str]] = {}
    for family in families:
        try:
            if not is_http(family.sink):
                continue
        except AirflowNotFoundException:
            continue
        if family.sink not in answers:
            answers[family.sink] = ErpHook(family.sink).test_connection()
        ok, detail = answers[family.sink]
        rows.append(CheckRow(family.family, f"({family.sink})", OK if ok else TARGET_REFUSED, detail))
        sink = HttpSink(family.sink)
        for family_object in family.objects:
            try:
                sink.prepare(cached_mapping(family_object.mapping_name))
            except (SinkConfigError, ValueError) as exc:
                rows.append(CheckRow(family.family, family_object.name, ENDPOINT_INVALID, str(exc)))
    return rows


def preflight(
    conn_id: str = ZuoraHook.default_conn_name,
    families_directory: Path | None = None,
    mappings_directory: Path | None = None,
    track_prefix: str = "zuora-preflight",
) -> PreflightReport:
    """Run the preflight for a connection id and the family files of a directory (default: the
    project's); mappings from `mappings_directory`, else `mappings/` beside the families directory."""
    if mappings_directory is None and families_directory is not None:
        sibling = Path(families_directory).parent / "mappings"
        mappings_directory = sibling if sibling.is_dir() else None
    families, rows = load_families_or_rows(Path(families_directory) if families_directory else None)
    hook = ZuoraHook(conn_id, track_prefix=track_prefix)
    return run_preflight(hook, families, mappings_directory, family_rows=rows)


def preflight_or_fail(
    conn_id: str = ZuoraHook.default_conn_name,
    families_directory: Path | None = None,
    track_prefix: str = "zuora-preflight",
) -> dict[str, Any]:
    """The DAG's task: run, log the table either way, fail (no retry) with the summary on any problem."""
    from airflow.sdk.exceptions import AirflowFailException

    report = preflight(conn_id, families_directory, track_prefix=track_prefix)
    for line in report.render().splitlines():
        (log.info if report.ok else log.error)("%s", line)
    if not report.ok:
        raise AirflowFailException(report.summary())
    return report.as_dict()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m zuora_etl.preflight",
        description="Check a Zuora connection, every family's fields and filters, and the tenant's rate limit.",
    )
    parser.add_argument(
        "--conn-id", default=ZuoraHook.default_conn_name, help="Airflow connection (default %(default)s)"
    )
    parser.add_argument("--families-dir", type=Path, help="family YAML directory (default: include/families)")
    parser.add_argument("--mappings-dir", type=Path, help="mapping YAML directory (default: mappings/ beside it)")
    args = parser.parse_args(argv)
    report = preflight(args.conn_id, args.families_dir, args.mappings_dir)
    print(report.render())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
