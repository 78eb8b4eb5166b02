"""Sizing estimates as plain values: the transfer formula, growth and forecast, the first-of-month
peak, storage, API calls against a daily limit; the sizing SQL files; the state table on SQLite."""

from __future__ import annotations

import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from zuora_etl.db import create_tables
from zuora_etl.families import load_families
from zuora_etl.settings import DATA_QUERY_MAX_JOBS
from zuora_etl.sizing import (
    Read,
    add_months,
    api_calls,
    busiest,
    bytes_per_record,
    complete_months,
    daily_limit,
    days_sql,
    export_sql,
    family_reads,
    first_day_share,
    fit_growth,
    forecast,
    load_counts,
    month_range,
    parse_counts,
    run_queries,
    save_counts,
    sizing_sql,
    sizing_table,
    tenant_zone,
    transfer_estimate,
    transfer_first_day_share,
)
from zuora_etl.sizing_report import estimate, forecast_rate, report_html

from include.zuora_emulator.schema import OBJECTS


def test_the_transfer_formula_counts_accounts_twice_and_leaves_other_objects_out():
    records = {"account": 10, "orderlineitem": 1, "orderaction": 2, "subscription": 3, "rateplan": 4,
               "rateplancharge": 5, "rateplanchargetier": 6, "invoice": 7, "invoiceitem": 8,
               "payment": 1000, "contact": 1000, "creditmemo": 1000, "orders": 1000}  # fmt: skip
    assert transfer_estimate(records) == 2 * 10 + 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8
    assert transfer_estimate({}) == 0


def test_months_are_counted_through_year_ends():
    assert month_range("2025-11", "2026-02") == ["2025-11", "2025-12", "2026-01", "2026-02"]
    assert add_months("2025-11", 3) == "2026-02" and add_months("2026-01", -1) == "2025-12"


def test_a_month_is_complete_once_it_ended_in_the_tenants_zone_or_else_in_every_zone():
    months = ["2026-10", "2026-11", "2026-12"]
    first = datetime(2026, 12, 1, tzinfo=UTC)  # the @monthly run
    # zone unknown: November may not be over yet (America/Los_Angeles runs 8 h behind)
    assert complete_months(months, first) == ["2026-10"]
    assert complete_months(months, first.replace(hour=11, minute=59)) == ["2026-10"]
    assert complete_months(months, first.replace(hour=12)) == ["2026-10", "2026-11"]
    # the connection's extra `timezone`: November ends at 08:00 UTC in Los Angeles, already in Tokyo
    la, tokyo = tenant_zone("America/Los_Angeles"), tenant_zone("+09:00")
    assert complete_months(months, first, la) == ["2026-10"]
    assert complete_months(months, first.replace(hour=8), la) == ["2026-10", "2026-11"]
    assert complete_months(months, first, tokyo) == ["2026-10", "2026-11"]
    assert tenant_zone("-0800").utcoffset(None) == -timedelta(hours=8)
    assert tenant_zone(None) is None and tenant_zone("Mars/Olympus") is None and tenant_zone(" ") is None


def test_growth_is_the_compound_rate_of_a_log_linear_fit():
    values = [100 * 1.05**t for t in range(12)]
    growth = fit_growth(values)
    assert growth.rate == pytest.approx(0.05) and growth.level == pytest.approx(100)
    assert growth.months_fitted == 12
    noisy = fit_growth([100, 0, 121])  # a month without records is left out, not log(0)
    assert noisy.rate == pytest.approx(0.1) and noisy.months_fitted == 2
    flat = fit_growth([0, 7, 0])  # one month with records: no rate to fit, the mean stays flat
    assert flat.rate == 0 and flat.level == pytest.approx(7 / 3) and flat.at(10) == pytest.approx(7 / 3)


def test_the_forecast_fits_the_last_twelve_complete_months_and_projects_after_them():
    series = {add_months("2025-01", t): (1 if t < 6 else 200 * 1.02 ** (t - 6)) for t in range(18)}
    series["2026-07"] = 5  # the partial month being counted now: not fitted
    complete = sorted(m for m in series if m < "2026-07")
    growth, projected = forecast(series, complete, horizon=24)
    assert growth.rate == pytest.approx(0.02) and growth.months_fitted == 12  # the ramp-up months left out
    assert min(projected) == "2026-07" and max(projected) == "2028-06" and len(projected) == 24
    assert projected["2026-07"] == pytest.approx(200 * 1.02**12)
    assert projected["2028-06"] == pytest.approx(200 * 1.02**35)
    assert forecast(series, [], 24)[1] == {}  # nothing complete yet: nothing to project


def test_the_first_of_month_peak_is_measured_from_day_counts():
    assert first_day_share({"01": 30, "02": 10, "15": 20}) == 0.5
    assert first_day_share({}) is None
    days = {"invoice": {"01": 90, "02": 10}, "account": {"01": 0, "17": 5}, "payment": {"01": 1000}}
    # (90 + 2*0) of (100 + 2*5): payments are outside the formula
    assert transfer_first_day_share(days) == pytest.approx(90 / 110)
    assert transfer_first_day_share({"payment": {"01": 3}}) is None


def test_storage_and_busiest_month():
    assert bytes_per_record(35_000, 100) == 350 and bytes_per_record(120, 0) == 0
    assert busiest({"2026-01": 5, "2026-02": 9, "2026-03": 9}) == "2026-02"
    assert busiest({"2026-01": 0}) is None and busiest({}) is None


def test_api_calls_page_by_99_and_mark_by_50_or_one_put_per_memo():
    reads = [Read("invoice", "action"), Read("invoice"), Read("invoiceitem"), Read("creditmemo", "memo")]
    records = {"invoice": 100, "invoiceitem": 990, "creditmemo": 3}
    # invoices: 2 pages + 2 action calls (ERP) and 2 pages again (CRM); items 10 pages; memos 1 page + 3 PUTs
    assert api_calls(records, reads) == (2 + 2) + 2 + 10 + (1 + 3)
    assert api_calls({}, reads) == 0


def test_the_shipped_families_read_and_mark_what_the_estimate_counts():
    reads = family_reads(load_families())
    assert Read("invoice", "action") in reads and Read("invoice") in reads  # ERP flags, CRM does not
    assert Read("creditmemo", "memo") in reads and Read("payment", "action") in reads
    assert {r.table for r in reads} == set(sizing_sql())


def test_the_daily_limit_comes_from_the_param_or_zuoras_tier():
    assert daily_limit(2_500, None) == (10_000, "Zuora's API sandbox tier (2,500 calls/min)")
    assert daily_limit(12_500, None)[0] == 50_000 and daily_limit(50_000, None)[0] == 27_000_000
    assert daily_limit(2_500, 7) == (7, "given as daily_api_limit")
    assert daily_limit(100, None) == (144_000, "assumed: 100 calls/min all day")
    assert daily_limit(None, None)[0] is None


def test_one_sql_file_per_data_query_table_with_the_guides_query():
    sqls = sizing_sql()
    assert set(sqls) == {s.data_query_table for s in OBJECTS.values()} - {"amendment", "product"}
    for table, sql in sqls.items():
        assert f"FROM {table}\n" in sql and "year(current_date) - 1 <= year(createddate)" in sql
    assert "WHERE concat(format_datetime(createddate,'YYYY'),'-',format_datetime(createddate,'MM')) = '2026-03'" in (
        days_sql("invoice", "2026-03")
    )
    assert export_sql("invoiceitem", "2026-03").startswith("SELECT * FROM invoiceitem WHERE")
    with pytest.raises(ValueError):
        export_sql("invoice; DROP TABLE x", "2026-03")
    with pytest.raises(ValueError):
        days_sql("invoice", "2026-03' OR '1'='1")
    assert parse_counts("month,count(*)\n2026-01,5\n2026-02,7\n") == {"2026-01": 5, "2026-02": 7}


def test_a_rerun_replaces_its_rows_only(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'state.db'}")
    create_tables(engine, sizing_table)
    save_counts(engine, "r1", {"invoice": {"2026-01": 5, "2026-02": 6}, "account": {"2026-01": 1}})
    save_counts(engine, "r2", {"invoice": {"2026-01": 9}})
    assert save_counts(engine, "r1", {"invoice": {"2026-02": 7}}) == 1
    assert load_counts(engine, "r1") == {"invoice": {"2026-02": 7}}
    assert load_counts(engine, "r2") == {"invoice": {"2026-01": 9}}


def _run(counts, complete, busiest_month, days, exports, limit_per_minute=2_500):
    months = {"run_id": "r", "tables": sorted(counts), "months": sorted({m for by in counts.values() for m in by}),
              "complete_months": complete, "busiest_month": busiest_month,
              "busiest_by_table": {t: max(by, key=lambda m: (m in complete, by[m])) for t, by in counts.items()},
              "rows": 0, "limit_per_minute": limit_per_minute, "jobs": 0}  # fmt: skip
    return months, {"month": busiest_month, "days": days, "jobs": 0}, {"exports": exports, "jobs": 0}


def test_the_estimate_puts_forecast_peak_storage_and_calls_together():
    months = [add_months("2025-01", t) for t in range(12)]
    counts = {
        "invoice": {m: round(1000 * 1.03**t) for t, m in enumerate(months)},
        "account": {m: 100 for m in months},
    }
    counts["invoice"]["2026-01"] = 50  # the partial month
    busiest_month = months[-1]
    days = {"invoice": {"01": counts["invoice"][busiest_month]}, "account": {"01": 30, "10": 70}}
    exports = {"invoice": {"month": busiest_month, "bytes": 300 * counts["invoice"][busiest_month]},
               "account": {"month": months[0], "bytes": 100 * 400}}  # fmt: skip
    reads = [Read("invoice", "action"), Read("account")]
    m, d, e = _run(counts, months, busiest_month, days, exports)
    s = estimate(counts, m, d, e, reads, horizon=24)

    inv = next(t for t in s.tables if t.table == "invoice")
    assert inv.growth.rate == pytest.approx(0.03, abs=1e-4) and len(s.transfer_forecast) == 24
    last = "2027-12"
    assert s.transfer_forecast[last] == pytest.approx(inv.forecast[last] + 2 * 100)
    assert s.transfer_observed[busiest_month] == counts["invoice"][busiest_month] + 200
    # the 1st carries every invoice and 30% of the accounts of the busiest month
    assert s.peak_measured and s.peak_share == pytest.approx((counts["invoice"][busiest_month] + 60) /
                                                             s.transfer_observed[busiest_month])  # fmt: skip
    peak_invoices = inv.forecast[last]
    assert s.calls_peak == math.ceil(peak_invoices / 99) + math.ceil(peak_invoices / 50) + math.ceil(30 / 99)
    assert s.calls_average == math.ceil(peak_invoices / 31 / 99) + math.ceil(peak_invoices / 31 / 50) + 1
    # storage: bytes per record of each busiest-month export, times the records counted or forecast
    assert inv.bytes_per_record == 300 and next(t for t in s.tables if t.table == "account").bytes_per_record == 400
    assert s.storage_observed == pytest.approx(300 * sum(counts["invoice"].values()) + 400 * 1200)
    assert s.storage_forecast == pytest.approx(300 * inv.forecast_total + 400 * 100 * 24)
    assert forecast_rate(s) > 0
    # an API sandbox (2,500 calls/min: 10,000 a day) carries this small load
    assert s.limit == 10_000 and not s.over_limit
    html = report_html(s)
    assert "within the daily limit (10,000)" in html and "Zuora&#x27;s API sandbox tier" in html

    heavy = {t: {m: n * 1000 for m, n in by.items()} for t, by in counts.items()}
    days_heavy = {t: {d: n * 1000 for d, n in by.items()} for t, by in days.items()}
    m, d, e = _run(heavy, months, busiest_month, days_heavy, exports)
    s = estimate(heavy, m, d, e, reads, horizon=24)
    assert s.over_limit and s.calls_peak > 10_000
    assert "EXCEEDS the daily limit (10,000)" in report_html(s) and "cannot carry this load" in report_html(s)


def test_without_day_counts_the_peak_is_an_even_spread_and_says_so():
    counts = {"invoice": {"2026-01": 310, "2026-02": 280}}
    m, d, e = _run(counts, ["2026-01", "2026-02"], None, {}, {})
    s = estimate(counts, m, d, e, [Read("invoice")], horizon=3)
    assert not s.peak_measured and s.peak_share == pytest.approx(12 / 365.25)
    assert any("even spread" in n for n in s.notes) and any("No export measured" in n for n in s.notes)


def test_a_tenant_with_no_complete_month_yet_still_gets_a_report():
    counts = {"invoice": {"2026-12": 5}}
    m, d, e = _run(counts, [], None, {}, {}, limit_per_minute=None)
    m["busiest_by_table"] = {}
    s = estimate(counts, m, d, e, [Read("invoice")], horizon=24)
    assert s.transfer_forecast == {} and s.calls_peak == 0 and s.limit is None
    assert "no daily limit known" in report_html(s)
    from zuora_etl.sizing_report import chart_png

    assert chart_png(s)[:4] == b"\x89PNG"


class _CountingHook:
    """Stands in for ZuoraHook's Data Query calls and records the most jobs running at once."""

    def __init__(self) -> None:
        self.lock, self.running, self.most = threading.Lock(), 0, 0

    def submit_query(self, sql: str) -> str:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        return sql

    def wait_for_query(self, job_id: str, timeout_s: float, poll_s: float) -> dict:
        time.sleep(0.05)
        return {"id": job_id}

    def done(self, job: dict) -> str:
        with self.lock:
            self.running -= 1
        return job["id"]


def test_data_query_jobs_stay_within_the_cap_across_callers():
    """Callers in threads (the plan counting several objects, each with its children) share one
    bound: never more than DATA_QUERY_MAX_JOBS jobs at once in the process, and every job answers."""
    hook = _CountingHook()
    batches = [{f"{b}-{i}": f"SELECT {b}{i}" for i in range(DATA_QUERY_MAX_JOBS)} for b in range(4)]
    with ThreadPoolExecutor(max_workers=len(batches)) as pool:
        results = list(pool.map(lambda sqls: run_queries(hook, sqls, lambda h, job: h.done(job)), batches))
    assert results == batches
    assert 1 <= hook.most <= DATA_QUERY_MAX_JOBS
