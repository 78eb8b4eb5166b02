"""Backfills of a sync DAG through the real UI of a standalone Airflow: a date range typed into the
trigger form's params (Backfill from / Backfill until), Airflow's own Backfill dialog (one run per
schedule interval, of which only the first reads, the whole range), and a start that is not a date,
refused with the param named and no run created."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from tests.ui.ui_support import (
    active_runs,
    as_utc,
    clear_target,
    crm_db,
    field,
    mentions,
    open_trigger_dialog,
    pick_datetime,
    run_ids,
    run_rows,
    run_url,
    save_screenshot,
    set_configuration_json,
    shown,
    target_ids,
    trigger,
    unpause,
    updated,
    updated_in,
    watermarks,
)

DAG_ID, FAMILY = "zuora_crm_invoices", "crm_invoices"
STEP = timedelta(minutes=30)  # include/families/crm_invoices.yaml: schedule "*/30 * * * *"
BACKFILL_NOTE = "Airflow backfill (watermarks stay)"
TITLE = f"Trigger Dag - {DAG_ID}"


@pytest.fixture
def unpaused(airflow_ui):
    """The DAG unpaused for the test (cron runs stay off: use_job_schedule is False), paused after."""
    with unpause(airflow_ui, DAG_ID):
        yield


def day_window(invoices) -> tuple[datetime, datetime]:
    """A range of a few days, from 06:00 to 18:30 UTC (the time fields matter), holding a few dozen
    invoices: picked from the emulator's data, which is generated up to the start of today."""
    newest = max(updated(r) for r in invoices)
    day = newest.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=4)
    for _ in range(120):
        lo, hi = day.replace(hour=6), (day + timedelta(days=4)).replace(hour=18, minute=30)
        if 15 <= len(updated_in(invoices, lo, hi)) <= 60:
            return lo, hi
        day -= timedelta(days=1)
    pytest.fail("no 4-day window of the emulator's invoices holds 15 to 60 of them")


def test_backfill_form_loads_exactly_the_range(airflow_ui, browser_page, invoice_records, crm, unpaused):
    api, page = airflow_ui.api, browser_page
    invoices, items = invoice_records
    lo, hi = day_window(invoices)
    want_invoices, want_items = updated_in(invoices, lo, hi), updated_in(items, lo, hi)

    dialog = open_trigger_dialog(page, DAG_ID)
    assert pick_datetime(dialog, field(dialog, "Backfill from"), lo, close_on=TITLE) == shown(lo)
    assert pick_datetime(dialog, field(dialog, "Backfill until"), hi, close_on=TITLE) == shown(hi)
    save_screenshot(dialog, "backfill_form.png")
    run = trigger(dialog)
    run_id = run["dag_run_id"]
    assert as_utc(run["conf"]["start"]) == lo and as_utc(run["conf"]["end"]) == hi, run["conf"]

    final = airflow_ui.wait_for_run(DAG_ID, run_id, timeout=180)
    states = airflow_ui.task_states(DAG_ID, run_id)
    assert final["state"] == "success", states
    plan = api.get(f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/plan/xcomEntries/return_value")["value"]
    assert plan["mode"] == "backfill", plan
    for obj in ("invoices", "invoice_items"):
        windows = plan["objects"][obj]["windows"]
        assert (as_utc(windows[0]["lo"]), as_utc(windows[-1]["hi"])) == (lo, hi), windows

    # Exactly the records updated in [from, until) landed (items by their own updatedDate: the CRM
    # family reads them by window); no watermark moved.
    assert target_ids(crm, "invoices") == want_invoices
    assert target_ids(crm, "invoice_items") == want_items
    assert watermarks(airflow_ui) == {}
    rows = {r["object"]: r for r in run_rows(airflow_ui, [run_id])}
    assert rows["invoices"]["mode"] == "backfill" and rows["invoices"]["rows_loaded"] == len(want_invoices), rows
    assert final["note"] and final["note"].startswith("Backfill "), final["note"]


def busy_hours(invoices) -> tuple[datetime, datetime]:
    """From/To of an Airflow backfill of 10 half-hour runs around the busiest half hour of the last
    week (the emulator's bill run), which lands in a later run of the chain, not the first."""
    newest = max(updated(r) for r in invoices)
    slots = Counter(updated(r).replace(minute=updated(r).minute // 30 * 30, second=0, microsecond=0)
                    for r in invoices if newest - updated(r) < timedelta(days=7))  # fmt: skip
    busiest = slots.most_common(1)[0][0]
    start = busiest.replace(minute=0) - timedelta(hours=2)
    return start, start + 9 * STEP  # runs at From, From+30min ... To: 10 intervals


def test_airflow_backfill_dialog_reads_the_range_once_and_moves_no_watermark(
    airflow_ui_postgres, browser_page_postgres, poll, invoice_records
):
    """Airflow's Backfill dialog, on the PostgreSQL-backed standalone (see `airflow_ui_postgres` in conftest.py)."""
    ui, page = airflow_ui_postgres, browser_page_postgres
    api, crm = ui.api, crm_db(ui)
    clear_target(crm)
    api.patch(f"dags/{DAG_ID}", {"is_paused": False})
    invoices, items = invoice_records
    start, to = busy_hours(invoices)
    end = to + STEP  # the last run's interval ends one step after its logical date
    want_invoices, want_items = updated_in(invoices, start, end), updated_in(items, start, end)
    assert want_invoices, "no invoice in the backfill range"
    before = run_ids(ui, DAG_ID)
    poll(lambda: not active_runs(ui), timeout=60, what="no active run before the backfill")

    dialog = open_trigger_dialog(page, DAG_ID)
    dialog.get_by_text("Run this Dag for a range of dates").click()
    dialog.get_by_text("Date Range").wait_for()
    assert pick_datetime(dialog, field(dialog, "From", exact=True), start, close_on="Date Range") == shown(start)
    assert pick_datetime(dialog, field(dialog, "To", exact=True), to, close_on="Date Range") == shown(to)
    dialog.get_by_text("10 runs will be triggered.").wait_for()
    save_screenshot(dialog, "backfill_dialog.png")
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/backfills")) as created:
        dialog.get_by_role("button", name="Run Backfill").click()
    assert created.value.ok, f"POST /backfills answered {created.value.status}: {created.value.text()[:500]}"
    backfill = created.value.json()

    def completed():
        return api.get(f"backfills/{backfill['id']}")["completed_at"]

    poll(completed, timeout=240, interval=2, what=f"backfill {backfill['id']} to complete")
    runs = sorted((r for r in api.get(f"dags/{DAG_ID}/dagRuns", limit=1000, run_type="backfill")["dag_runs"]
                   if r["dag_run_id"] not in before), key=lambda r: r["data_interval_start"])  # fmt: skip
    assert len(runs) == 10, [r["dag_run_id"] for r in runs]
    assert as_utc(runs[0]["data_interval_start"]) == start and as_utc(runs[-1]["data_interval_end"]) == end
    assert {r["state"] for r in runs} == {"success"}, {r["dag_run_id"]: r["state"] for r in runs}
    assert {r["note"] for r in runs} == {BACKFILL_NOTE}

    # The first run of the chain reads the whole range, in one window per object; the others read
    # nothing: their chains and finish are skipped, and only the first writes zuora_etl_runs rows.
    leader, followers = runs[0]["dag_run_id"], [r["dag_run_id"] for r in runs[1:]]
    plan = api.get(f"dags/{DAG_ID}/dagRuns/{leader}/taskInstances/plan/xcomEntries/return_value")["value"]
    assert plan["mode"] == "backfill", plan
    for obj in ("invoices", "invoice_items"):
        windows = plan["objects"][obj]["windows"]
        assert (as_utc(windows[0]["lo"]), as_utc(windows[-1]["hi"])) == (start, end), windows
    leader_states = ui.task_states(DAG_ID, leader)
    assert leader_states["finish"] == "success", leader_states
    for run_id in followers:
        states = ui.task_states(DAG_ID, run_id)
        assert states["plan"] == "success", states
        chain = {t: s for t, s in states.items() if t.split(".")[0] in ("invoices", "invoice_items")}
        assert chain and set(chain.values()) == {"skipped"}, states
        assert states["finish"] == "skipped", states
    rows = run_rows(ui, [leader, *followers])
    assert sorted((r["run_id"], r["object"]) for r in rows) == [(leader, "invoice_items"), (leader, "invoices")]
    for row in rows:
        assert row["mode"] == "backfill" and row["status"] == "success", row
        assert (as_utc(row["window_lo"] + "+00:00"), as_utc(row["window_hi"] + "+00:00")) == (start, end), row

    assert target_ids(crm, "invoices") == want_invoices
    assert target_ids(crm, "invoice_items") == want_items
    assert watermarks(ui) == {}

    # The UI: the runs list holds the ten backfill runs; a follower's page shows the note.
    page.goto(f"/dags/{DAG_ID}/runs")
    for run in runs:
        page.get_by_role("link", name=run["dag_run_id"], exact=True).first.wait_for()
    save_screenshot(page, "backfill_runs.png")
    page.goto(run_url(DAG_ID, followers[-1]))
    page.get_by_text(BACKFILL_NOTE).first.wait_for()


def test_a_start_that_is_not_a_date_is_refused_and_creates_no_run(airflow_ui, browser_page):
    api, page = airflow_ui.api, browser_page
    before = run_ids(airflow_ui, DAG_ID)
    dialog = open_trigger_dialog(page, DAG_ID)

    # The date picker takes no free text: "June 1st" typed into it leaves the param empty.
    start = field(dialog, "Backfill from")
    start.get_by_test_id("datetime-input").click()
    popover = page.locator("[data-scope=popover][data-part=content][data-state=open]")
    popover.get_by_placeholder("YYYY/MM/DD").fill("June 1st")
    popover.get_by_placeholder("HH:mm").press("Enter")
    dialog.get_by_text(TITLE, exact=True).click()
    popover.wait_for(state="hidden")
    assert start.get_by_test_id("datetime-input").inner_text() == "Select date and time"

    # Typed as the run's Configuration JSON instead, the trigger is refused naming the param.
    set_configuration_json(dialog, {"start": "June 1st", "end": None, "dry_run": False, "slices": None})
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/dagRuns")) as created:
        dialog.get_by_test_id("trigger-dag-submit").click()
    assert created.value.status == 400, created.value.text()
    assert mentions(created.value.json()["detail"], "param start", "June 1st")
    error = dialog.get_by_text("Invalid input for param start").first
    error.wait_for()
    error.scroll_into_view_if_needed()
    save_screenshot(page, "backfill_bad_start.png")

    # The REST API refuses it the same way.
    resp = api.request("POST", f"dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": {"start": "June 1st"}})
    assert resp.status_code == 400 and mentions(resp.json()["detail"], "param start"), resp.text
    assert run_ids(airflow_ui, DAG_ID) == before, "a refused trigger created a run"


def test_backfill_window_helpers_pick_data():
    """busy_hours gives 10 half-hour runs starting on the hour."""
    now = datetime(2026, 12, 2, tzinfo=UTC)
    recs = [{"id": str(i), "updatedDate": (now - timedelta(hours=16)).isoformat()} for i in range(5)]
    start, to = busy_hours(recs)
    assert start == now - timedelta(hours=18) and to - start == 9 * STEP
