"""The sizing report: estimates from the measured counts (pure), then the files people read.

`estimate` turns the run's counts and measurements into a `Sizing` (plain values, no I/O);
`write_report` writes `report.html`, `monthly_counts.csv`, `forecast.csv`, `objects.csv` and
`chart.png` under `sizing/<run_id>/` of the reports root.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypedDict

from airflow.sdk import ObjectStoragePath

from . import reports
from .sizing import (
    TRANSFER_WEIGHTS,
    DaysManifest,
    ExportsManifest,
    Growth,
    MonthlyManifest,
    Read,
    api_calls,
    bytes_per_record,
    daily_limit,
    days_in,
    first_day_share,
    forecast,
    transfer_by_month,
    transfer_estimate,
    transfer_first_day_share,
)

# Chart size in inches and resolution: 1100 x 528 px, legible in the report's 70rem column and in an email.
CHART_SIZE_IN = (10.0, 4.8)
CHART_DPI = 110
# How many tables the per-object chart lines show: the rest would be an unreadable tangle.
CHART_TOP_TABLES = 5
# Days in an average month, for an even spread when no month has been measured day by day.
AVERAGE_MONTH_DAYS = 365.25 / 12


class ReportManifest(TypedDict):
    folder: str
    files: list[str]
    busiest_month: str | None
    transfer_busiest_month: int
    transfer_last_forecast_month: int
    peak_day_calls: int
    daily_limit: int | None
    over_limit: bool


@dataclass(frozen=True)
class TableSizing:
    table: str
    weight: int  # in the transfer formula (0: outside it)
    observed: int  # records in every counted month
    busiest_month: str | None
    busiest_records: int
    first_day_share: float  # measured in the transfer's busiest month, else assumed uniform
    growth: Growth
    forecast: dict[str, float]  # month -> records
    bytes_per_record: float

    @property
    def forecast_total(self) -> float:
        return sum(self.forecast.values())


@dataclass(frozen=True)
class Sizing:
    run_id: str
    months: list[str]
    complete_months: list[str]
    counts: dict[str, dict[str, int]]
    tables: list[TableSizing]
    busiest_month: str | None
    transfer_observed: dict[str, float]  # every counted month
    transfer_forecast: dict[str, float]
    transfer_growth: Growth
    peak_share: float  # share of the busiest month's transfer landing on the 1st
    peak_measured: bool
    calls_now: int  # the 1st of the busiest month
    calls_peak: int  # the 1st of the last forecast month
    calls_average: int  # an average day of the last forecast month
    limit: int | None
    limit_basis: str
    storage_observed: float  # bytes: every counted record, exported
    storage_forecast: float  # bytes: the forecast months' new records
    notes: list[str] = field(default_factory=list)

    @property
    def over_limit(self) -> bool:
        return self.limit is not None and self.calls_peak > self.limit


def estimate(
    counts: Mapping[str, Mapping[str, int]],
    months: MonthlyManifest,
    days: DaysManifest,
    exports: ExportsManifest,
    reads: Sequence[Read],
    horizon: int,
    daily_api_limit: int | None = None,
) -> Sizing:
    """Every estimate of the report, from plain values."""
    complete = months["complete_months"]
    month = days["month"]
    notes: list[str] = []
    uniform = 1 / days_in(month) if month else 1 / AVERAGE_MONTH_DAYS  # an even spread over the month
    tables = []
    for t in sorted(counts):
        by = counts[t]
        growth, fc = forecast(by, complete, horizon)
        share = first_day_share(days["days"].get(t, {})) if month else None
        export = exports["exports"].get(t)
        tables.append(TableSizing(
            table=t, weight=TRANSFER_WEIGHTS.get(t, 0), observed=sum(by.values()),
            busiest_month=months["busiest_by_table"].get(t),
            busiest_records=by.get(months["busiest_by_table"].get(t, ""), 0),
            first_day_share=share if share is not None else uniform,
            growth=growth, forecast=fc,
            bytes_per_record=bytes_per_record(export["bytes"], by.get(export["month"], 0)) if export else 0.0,
        ))  # fmt: skip
    by_table = {s.table: s for s in tables}
    forecast_months = sorted({m for s in tables for m in s.forecast})
    transfer_fc = {m: transfer_estimate({s.table: s.forecast.get(m, 0.0) for s in tables}) for m in forecast_months}
    observed = transfer_by_month(counts, months["months"])
    transfer_growth, _ = forecast(observed, complete, horizon)

    share = transfer_first_day_share(days["days"]) if month else None
    measured = share is not None
    if share is None:
        share = uniform
        notes.append("No day-level counts: the first-of-month share assumes an even spread over the month.")

    def peak_day(month_records: Mapping[str, float]) -> dict[str, float]:
        return {t: n * by_table[t].first_day_share for t, n in month_records.items() if t in by_table}

    last = forecast_months[-1] if forecast_months else None
    calls_now = api_calls(peak_day({t: counts[t].get(month, 0) for t in counts}), reads) if month else 0
    calls_peak = api_calls(peak_day({s.table: s.forecast[last] for s in tables}), reads) if last else 0
    calls_avg = api_calls({s.table: s.forecast[last] / days_in(last) for s in tables}, reads) if last else 0
    limit, basis = daily_limit(months["limit_per_minute"], daily_api_limit)
    missing = [s.table for s in tables if s.observed and not s.bytes_per_record]
    if missing:
        notes.append(f"No export measured for {', '.join(missing)}: their storage counts as zero.")
    return Sizing(
        run_id=months["run_id"], months=months["months"], complete_months=complete,
        counts={t: dict(by) for t, by in counts.items()}, tables=tables, busiest_month=month,
        transfer_observed=observed, transfer_forecast=transfer_fc, transfer_growth=transfer_growth,
        peak_share=share, peak_measured=measured, calls_now=calls_now, calls_peak=calls_peak,
        calls_average=calls_avg, limit=limit, limit_basis=basis,
        storage_observed=sum(s.bytes_per_record * s.observed for s in tables),
        storage_forecast=sum(s.bytes_per_record * s.forecast_total for s in tables), notes=notes,
    )  # fmt: skip


# ---------- files ----------
def write_report(sizing: Sizing, folder: ObjectStoragePath) -> ReportManifest:
    files = [
        reports.write_bytes(folder / "chart.png", chart_png(sizing)),
        reports.write_text(folder / "monthly_counts.csv", monthly_csv(sizing)),
        reports.write_text(folder / "forecast.csv", forecast_csv(sizing)),
        reports.write_text(folder / "objects.csv", objects_csv(sizing)),
    ]
    files.insert(0, reports.write_text(folder / "report.html", report_html(sizing)))
    last = max(sizing.transfer_forecast, default=None)
    return ReportManifest(
        folder=str(folder),
        files=files,
        busiest_month=sizing.busiest_month,
        transfer_busiest_month=round(sizing.transfer_observed.get(sizing.busiest_month or "", 0)),
        transfer_last_forecast_month=round(sizing.transfer_forecast[last]) if last else 0,
        peak_day_calls=sizing.calls_peak,
        daily_limit=sizing.limit,
        over_limit=sizing.over_limit,
    )


def _csv(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def monthly_csv(s: Sizing) -> str:
    complete = set(s.complete_months)
    rows = [(t, m, n, m in complete) for t in sorted(s.counts) for m, n in sorted(s.counts[t].items())]
    return _csv(["object", "month", "records", "complete_month"], rows)


def forecast_csv(s: Sizing) -> str:
    rows = [("transfer_estimate", m, round(v)) for m, v in s.transfer_forecast.items()]
    rows += [(t.table, m, round(v)) for t in s.tables for m, v in t.forecast.items()]
    return _csv(["object", "month", "records"], rows)


def objects_csv(s: Sizing) -> str:
    rows = [(t.table, t.weight, t.observed, t.busiest_month or "", t.busiest_records, round(t.first_day_share, 4),
             round(t.growth.rate, 5), round(t.forecast_total), round(t.bytes_per_record, 1),
             round(t.bytes_per_record * t.forecast_total)) for t in s.tables]  # fmt: skip
    header = ["object", "transfer_weight", "records_counted", "busiest_month", "busiest_month_records",
              "first_day_share", "monthly_growth", "forecast_records", "bytes_per_record",
              "forecast_bytes"]  # fmt: skip
    return _csv(header, rows)


def _bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return ""


def forecast_rate(s: Sizing) -> float:
    """The forecast's average compound monthly growth, from the last complete month to its last month
    (the objects grow at their own rates, so this is not any one object's)."""
    values = list(s.transfer_forecast.values())
    start = s.transfer_observed.get(s.complete_months[-1], 0) if s.complete_months else 0
    if not values or start <= 0 or values[-1] <= 0:
        return 0.0
    return (values[-1] / start) ** (1 / len(values)) - 1


def _pct(x: float) -> str:
    """A share as people read it: one decimal, or two significant digits when smaller than 1%."""
    if 0 < abs(x) < 0.01:
        return f"{100 * x:.2g}%"
    return f"{100 * x:.1f}%"


def report_html(s: Sizing) -> str:
    months_fc = list(s.transfer_forecast)
    busiest = s.busiest_month
    transfer_busiest = round(s.transfer_observed.get(busiest or "", 0))
    peak_factor = s.peak_share * days_in(busiest) if busiest else 0.0
    verdict = (
        f"EXCEEDS the daily limit ({s.limit:,}): this tenant cannot carry the sync's peak day"
        if s.over_limit
        else f"within the daily limit ({s.limit:,}): {_pct(s.calls_peak / s.limit)} of it"
        if s.limit
        else "no daily limit known: pass daily_api_limit"
    )
    summary = [
        ("Months counted", f"{s.months[0]} to {s.months[-1]}" if s.months else "none", ""),
        ("Complete months (fitted: the last 12 at most)", len(s.complete_months), ""),
        ("Busiest month (transfer estimate)", busiest or "-", ""),
        ("Transfer estimate, busiest month", transfer_busiest, ""),
        ("Share of it created on the 1st", f"{_pct(s.peak_share)} ({'measured' if s.peak_measured else 'assumed'})"
         + (f", {peak_factor:.1f}x an average day" if busiest else ""), ""),
        ("Compound monthly growth: transfer estimate fitted", _pct(s.transfer_growth.rate), ""),
        ("Compound monthly growth: the forecast's average (objects fitted one by one)", _pct(forecast_rate(s)), ""),
    ]  # fmt: skip
    for k in (12, len(months_fc)):
        if 0 < k <= len(months_fc):
            summary.append((f"Transfer estimate in {months_fc[k - 1]} (+{k} months)",
                            round(s.transfer_forecast[months_fc[k - 1]]), ""))  # fmt: skip
    summary += [
        ("Storage: every counted record, full-field CSV", _bytes(s.storage_observed), ""),
        (f"Storage: new records over the next {len(months_fc)} months", _bytes(s.storage_forecast), ""),
        ("API calls on the 1st of the busiest month", s.calls_now, ""),
        (f"API calls on an average day of {months_fc[-1] if months_fc else '-'}", s.calls_average, ""),
        (f"API calls on the 1st of {months_fc[-1] if months_fc else '-'} (peak)", s.calls_peak,
         "bad" if s.over_limit else "good" if s.limit else ""),
        ("Tenant's daily API limit", s.limit if s.limit is not None else "unknown", ""),
        ("Where the limit comes from", s.limit_basis, ""),
        ("Verdict", verdict, "bad" if s.over_limit else "good" if s.limit else ""),
    ]  # fmt: skip
    flag = ""
    if s.over_limit:
        flag = (f'<p><strong style="color:#a11">Flag:</strong> the sync would need {s.calls_peak:,} calls on the '
                f"1st of {months_fc[-1]}, over the tenant's {s.limit:,} a day ({html.escape(s.limit_basis)}). "
                "An API sandbox (10,000 calls a day) cannot carry this load: test against a developer or "
                "central sandbox, or sync fewer objects there.</p>")  # fmt: skip
    objects = [(t.table, t.weight or "", t.observed, t.busiest_month or "-", t.busiest_records, _pct(t.first_day_share),
                _pct(t.growth.rate), round(t.forecast_total), f"{t.bytes_per_record:,.0f}",
                _bytes(t.bytes_per_record * t.forecast_total)) for t in s.tables]  # fmt: skip
    by_month = [(m, "observed" if m in s.complete_months else "partial (not fitted)", round(v))
                for m, v in sorted(s.transfer_observed.items())]  # fmt: skip
    by_month += [(m, "forecast", round(v)) for m, v in s.transfer_forecast.items()]
    sections = [
        ("Summary", flag + reports.table(["", "value"], [r[:2] for r in summary], [r[2] for r in summary])),
        ("Monthly volumes and forecast", reports.image("chart.png", "Monthly transfer estimate with forecast")),
        ("Per object", reports.table(
            ["object", "weight", "records counted", "busiest month", "records then",
             f"created on the 1st ({busiest or 'no month measured'})", "growth/month",
             f"forecast records ({len(months_fc)} months)", "bytes/record", "forecast storage"], objects)),
        ("How these are computed", _method(s)),
        ("Transfer estimate by month", reports.table(["month", "kind", "transfer estimate"], by_month)),
        ("Files", "<ul>" + "".join(f'<li><a href="{n}">{n}</a></li>' for n in
                                   ("monthly_counts.csv", "forecast.csv", "objects.csv", "chart.png")) + "</ul>"),
    ]  # fmt: skip
    meta = f"Run {s.run_id} - Zuora Data Query counts by created month, {len(s.tables)} objects"
    return reports.page("Zuora sizing", meta, sections)


def _method(s: Sizing) -> str:
    items = [
        "Transfer estimate per month (Zuora's formula): 2 x accounts + order line items + order actions + "
        "subscriptions + rate plans + rate plan charges + rate plan charge tiers + invoices + invoice items, "
        "each counted by created month with Data Query (include/sql/&lt;table&gt;.sql).",
        "Growth: least squares of log(records) on the month index over the last complete months (12 at most; "
        "months with no records left out), per object; the forecast applies the formula to the objects' "
        "forecasts. The current month is partial and not fitted.",
        "First-of-month peak: a second Data Query counts the busiest month's records per created day; the "
        "share of each object created on the 1st also scales the forecast months.",
        "Storage: each object's full-field CSV export (SELECT *) of its busiest month, divided by its records "
        "there, times the records counted or forecast. Uncompressed CSV: a database or Parquet copy is smaller.",
        "API calls per day: one Object Query page per 99 records each family reads (a table two families read "
        "counts twice; a family's filters, such as Posted only, are not applied: an upper bound), plus marking "
        "for ERP documents: one action call per 50 invoices, payments or refunds, "
        "one PUT per memo. Counts new records only: updates to older records, and the one call per object "
        "per run of an idle sync (see zuora_preflight), come on top.",
    ]
    return "<ul>" + "".join(f"<li>{i}</li>" for i in items + [html.escape(n) for n in s.notes]) + "</ul>"


def chart_png(s: Sizing) -> bytes:
    """Observed monthly transfer estimate (bars), the largest objects (lines) and the forecast."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter

    observed = sorted(s.transfer_observed)
    axis = sorted(set(observed) | set(s.transfer_forecast))
    x = {m: i for i, m in enumerate(axis)}
    complete = [m for m in observed if m in set(s.complete_months)]
    fig, ax = plt.subplots(figsize=CHART_SIZE_IN, dpi=CHART_DPI, layout="constrained")
    if s.transfer_forecast:
        first = min(s.transfer_forecast)
        ax.axvspan(x[first] - 0.5, len(axis) - 0.5, color="#f6efe6", zorder=0)
        ax.text((x[first] + len(axis) - 1) / 2, 0.62, f"{len(s.transfer_forecast)}-month forecast",
                transform=ax.get_xaxis_transform(), ha="center", color="#9a6a3a", fontsize=11)  # fmt: skip
    ax.bar([x[m] for m in observed], [s.transfer_observed[m] for m in observed], width=0.8,
           color=["#3b6ea8" if m in set(complete) else "#b8c7da" for m in observed],
           label="transfer estimate, observed (pale: month not over)")  # fmt: skip
    if s.transfer_forecast:
        start = complete[-1:] if complete else []
        fm = [*start, *s.transfer_forecast]
        fv = [*(s.transfer_observed[m] for m in start), *s.transfer_forecast.values()]
        ax.plot([x[m] for m in fm], fv, "--", color="#d9822b", linewidth=2.2,
                label=f"transfer estimate, forecast (avg {_pct(forecast_rate(s))} a month)")  # fmt: skip
    top = sorted(s.tables, key=lambda t: -t.observed)[:CHART_TOP_TABLES]
    for t in top:
        ax.plot([x[m] for m in complete], [s.counts[t.table].get(m, 0) for m in complete], linewidth=1.3,
                label=f"{t.table}: new records")  # fmt: skip
    step = max(1, math.ceil(len(axis) / 16))
    ax.set_xticks(range(0, len(axis), step), [axis[i] for i in range(0, len(axis), step)], rotation=45, ha="right")
    ax.set_xlim(-0.6, len(axis) - 0.4)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.set_ylabel("records per month")
    ax.set_title("Zuora: new records per created month, and the transfer estimate's forecast", loc="left")
    ax.grid(axis="y", color="#e3e8ef")
    ax.set_axisbelow(True)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: not labels[i].startswith("transfer estimate, observed"))
    ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="upper left", frameon=False,
              fontsize=8.5, ncols=2)  # fmt: skip
    out = io.BytesIO()
    fig.savefig(out, format="png")
    plt.close(fig)
    return out.getvalue()
