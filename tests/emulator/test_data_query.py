from __future__ import annotations

import csv
import io
import time
from collections import Counter
from datetime import datetime

import pytest

from include.zuora_emulator.schema import OBJECTS

SIZING = (
    "SELECT concat(format_datetime(createddate,'YYYY'),'-',format_datetime(createddate,'MM')) month, "
    "count(*) FROM {table} WHERE year(current_date) - 1 <= year(createddate) GROUP BY 1 ORDER BY 1"
)


def run_job(api, sql: str) -> dict:
    r = api.send(
        "POST",
        "/query/jobs",
        {"query": sql, "outputFormat": "CSV", "compression": "NONE"},
    )
    assert r.status_code == 200, r.text
    job = r.json()["data"]
    assert job["queryStatus"] == "accepted"
    for _ in range(100):
        job = api.get(f"/query/jobs/{job['id']}").json()["data"]
        if job["queryStatus"] in ("completed", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise AssertionError("query job did not finish")


@pytest.mark.parametrize("obj", sorted(o for o in OBJECTS))
def test_sizing_sql_counts_by_created_month_for_every_object(api, obj):
    table = OBJECTS[obj].data_query_table
    job = run_job(api, SIZING.format(table=table))
    assert job["queryStatus"] == "completed", job["errorMessage"]
    text = api.session.get(job["dataFile"]).text
    rows = list(csv.reader(io.StringIO(text)))
    got = {month: int(n) for month, n in rows[1:]}
    this_year = datetime.now().year
    want = Counter()
    for rec in api.truth(obj):
        created = datetime.fromisoformat(rec["createdDate"])
        if created.year >= this_year - 1:
            want[f"{created.year}-{created.month:02d}"] += 1
    assert got == dict(want)
    assert job["outputRows"] == len(got)


def test_failed_query_reports_an_error(api):
    job = run_job(api, "SELECT nope FROM invoice")
    assert job["queryStatus"] == "failed" and "nope" in job["errorMessage"]
    assert job["dataFile"] is None


def test_data_query_cannot_write(api):
    job = run_job(api, "DELETE FROM invoice")
    assert job["queryStatus"] == "failed"
    assert api.truth("invoices")


def test_unknown_job_is_404(api):
    assert api.get("/query/jobs/00000000-0000-0000-0000-000000000000").status_code == 404


def test_tables_have_zuoras_column_names(api):
    sql = (
        "SELECT (SELECT count(*) FROM orders WHERE accountid IS NOT NULL), "
        "(SELECT count(*) FROM invoice WHERE status = 'Posted' AND posteddate IS NOT NULL)"
    )
    job = run_job(api, sql)
    assert job["queryStatus"] == "completed", job["errorMessage"]
    rows = list(csv.reader(io.StringIO(api.session.get(job["dataFile"]).text)))
    posted = sum(i["status"] == "Posted" for i in api.truth("invoices"))
    assert [int(n) for n in rows[1]] == [len(api.truth("orders")), posted]
    assert run_job(api, "SELECT existingaccountid FROM orders")["queryStatus"] == "failed"
