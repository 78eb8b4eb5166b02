"""zuora_sizing end to end: dag.test() against the emulator over HTTP, counts checked against the
emulator's own records, the state table, the report files, the Data Query concurrency bound; and
the hook's Data Query methods on their own (completed, failed, timeout, result downloads)."""

from __future__ import annotations

import csv
import io
import json
import threading
from collections import Counter
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import sqlalchemy as sa
from zuora_etl.hooks.zuora import DataQueryError, ZuoraHook
from zuora_etl.sizing import sizing_sql

from include.zuora_emulator import Emulator
from include.zuora_emulator.schema import OBJECTS
from tests.sync_harness import SyncEnv, dagbag

ENDPOINT = {spec.data_query_table: name for name, spec in OBJECTS.items()}


def expected_months(emu: Emulator, table: str) -> dict[str, int]:
    """The emulator's records of `table` by created month (tenant time), as the sizing SQL selects
    them: since January of last year (UTC)."""
    since = datetime.now(UTC).year - 1
    months = Counter(r["createdDate"][:7] for r in emu.store.truth(ENDPOINT[table]))
    return {m: n for m, n in sorted(months.items()) if int(m[:4]) >= since}


def run_sizing(env: SyncEnv, conf: dict | None = None):
    dag = dagbag().dags["zuora_sizing"]
    retries = {t.task_id: t.retries for t in dag.tasks}
    for t in dag.tasks:
        t.retries = 0
    try:
        return dag.test(run_conf={"daily_api_limit": None, **(conf or {})})
    finally:
        for t in dag.tasks:
            t.retries = retries[t.task_id]


def xcom(run, task_id: str):
    """A task's return value, as the next task received it (the XCom table of the test's Airflow DB)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        query = session.query(XComModel.value).filter_by(
            dag_id=run.dag_id, run_id=run.run_id, task_id=task_id, key="return_value"
        )
        value = query.one()[0]
    return json.loads(value) if isinstance(value, (str, bytes)) else value


@pytest.fixture
def reports_root(tmp_path, monkeypatch):
    root = tmp_path / "reports"
    monkeypatch.setenv("AIRFLOW_VAR_ZUORA_ETL_REPORTS_ROOT", f"file://{root}")
    return root


def test_sizing_counts_every_table_by_month_as_zuora_holds_it(env, reports_root):
    emu = env.emu
    run = run_sizing(env)
    assert str(getattr(run.state, "value", run.state)) == "success"

    engine = env.engine("zuora_etl_state")
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT object, month, records FROM zuora_etl_sizing WHERE run_id = :r"),
                            {"r": run.run_id}).all()  # fmt: skip
    got: dict[str, dict[str, int]] = {}
    for table, month, records in rows:
        got.setdefault(table, {})[month] = records
    tables = set(sizing_sql())
    assert set(got) == tables == {spec.data_query_table for spec in OBJECTS.values()} - {"amendment", "product"}
    for table in sorted(tables):
        assert got[table] == expected_months(emu, table), table

    # the first-of-month peak: the busiest month counted by day, as the emulator holds it
    months, days = xcom(run, "count_by_month"), xcom(run, "count_busiest_month_by_day")
    busiest = months["busiest_month"]
    assert busiest and busiest in months["complete_months"] and days["month"] == busiest
    for table in ("invoice", "invoiceitem", "account"):
        want = Counter(
            r["createdDate"][8:10] for r in emu.store.truth(ENDPOINT[table]) if r["createdDate"][:7] == busiest
        )
        assert days["days"].get(table, {}) == dict(want), table
    # the partial current month is counted but never the busiest, nor fitted
    assert datetime.now(UTC).strftime("%Y-%m") not in months["complete_months"]

    # at most 3 Data Query jobs ran at once (submitted -> finished intervals on the emulator)
    jobs = list(emu.dataquery.jobs.values())
    assert len(jobs) == months["jobs"] + days["jobs"] + xcom(run, "measure_export_size")["jobs"]
    events = sorted([(j.created, 1) for j in jobs] + [(j.updated, -1) for j in jobs], key=lambda e: (e[0], e[1]))
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    assert 1 < peak <= 3

    folder = reports_root / "sizing" / run.run_id.replace(":", "_")
    names = {p.name for p in folder.iterdir()}
    assert {"report.html", "monthly_counts.csv", "forecast.csv", "objects.csv", "chart.png"} <= names
    assert (folder / "chart.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    monthly = list(csv.DictReader(io.StringIO((folder / "monthly_counts.csv").read_text())))
    assert sum(int(r["records"]) for r in monthly) == sum(sum(by.values()) for by in got.values())
    forecast = [r for r in csv.DictReader(io.StringIO((folder / "forecast.csv").read_text()))
                if r["object"] == "transfer_estimate"]  # fmt: skip
    assert len(forecast) == 24
    objects = {r["object"]: r for r in csv.DictReader(io.StringIO((folder / "objects.csv").read_text()))}
    assert float(objects["invoiceitem"]["bytes_per_record"]) > 50
    page = (folder / "report.html").read_text()
    assert '<img src="chart.png"' in page and "Zuora sizing" in page and "production or central sandbox" in page
    assert "EXCEEDS" not in page
    summary = xcom(run, "write_report")
    assert summary["busiest_month"] == busiest and summary["over_limit"] is False
    assert summary["daily_limit"] == 27_000_000  # the emulator's 50,000 calls/min: production tier

    # a rerun of the run id replaces its rows (here: the same counts, no duplicates)
    from zuora_etl.sizing import save_counts

    save_counts(engine, run.run_id, {"invoice": {"2020-01": 1}})
    with engine.connect() as conn:
        left = conn.execute(sa.text("SELECT object, month FROM zuora_etl_sizing WHERE run_id = :r"),
                            {"r": run.run_id}).all()  # fmt: skip
    assert left == [("invoice", "2020-01")]


def test_an_api_sandbox_that_cannot_carry_the_load_is_flagged(tmp_path, monkeypatch, reports_root):
    # an API sandbox's minute limit (2,500: 10,000 calls a day); jobs done in 20 ms keep the run quick
    with Emulator(scale="small", seed=42, rate_limit_per_minute=2_500, query_job_delay_s=0.02) as emu:
        env = SyncEnv(emu, tmp_path / "data", monkeypatch)
        run = run_sizing(env, {"daily_api_limit": 3})  # a limit this small tenant's peak day passes
    assert xcom(run, "count_by_month")["limit_per_minute"] == 2_500  # read from Zuora's RateLimit-Limit
    summary = xcom(run, "write_report")
    assert summary["daily_limit"] == 3 and summary["over_limit"] is True and summary["peak_day_calls"] > 3
    page = (reports_root / "sizing" / run.run_id.replace(":", "_") / "report.html").read_text()
    assert "EXCEEDS the daily limit" in page and "cannot carry" in page and "given as daily_api_limit" in page


def test_the_dag_reads_like_its_table_of_contents():
    dag = dagbag().dags["zuora_sizing"]
    assert dag.schedule == "@monthly"
    assert dag.catchup is False and dag.max_active_runs == 1
    order = ["count_by_month", "count_busiest_month_by_day", "measure_export_size", "write_report"]
    assert [t.task_id for t in dag.topological_sort()] == order
    assert all(t.task_id in dag.doc_md for t in dag.tasks) and "zuora" in dag.tags
    assert all(t.retries >= 1 and t.owner == "data-integration" for t in dag.tasks)


def test_a_query_zuora_refuses_fails_the_run_at_once(env, reports_root, tmp_path, monkeypatch):
    include = tmp_path / "include"
    (include / "sql").mkdir(parents=True)
    (include / "sql" / "invoice.sql").write_text("SELECT nope FROM invoice")
    monkeypatch.setenv("ZUORA_ETL_INCLUDE_DIR", str(include))
    dag = dagbag().dags["zuora_sizing"]
    assert dag.get_task("count_by_month").retries == 1  # kept: a retryable failure would wait 5 minutes
    run = dag.test(run_conf={"daily_api_limit": None})
    ti = run.get_task_instance("count_by_month")
    assert str(getattr(run.state, "value", run.state)) == "failed"
    assert str(getattr(ti.state, "value", ti.state)) == "failed" and ti.try_number == 1


# ---------- the hook's Data Query methods, over HTTP ----------
@pytest.fixture
def hook(fresh_emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_DEFAULT", json.dumps({
        "conn_type": "http", "host": fresh_emulator.base_url, "login": "demo-client", "password": "demo-secret",
        "extra": {"backoff_seconds": 0.01, "max_attempts": 3},
    }))  # fmt: skip
    return ZuoraHook()


def test_a_completed_query_is_downloaded_as_csv(hook, fresh_emulator):
    job = hook.wait_for_query(hook.submit_query("SELECT count(*) n FROM invoice"), timeout_s=10, poll_s=0.2)
    assert job["queryStatus"] == "completed" and job["dataFile"].startswith(fresh_emulator.base_url)
    text = hook.download_query_result(job)
    assert text.splitlines() == ["n", str(len(fresh_emulator.store.truth("invoices")))]
    assert hook.query_result_size(job) == len(text.encode())


def test_a_failed_query_raises_a_clear_fatal_error(hook):
    job_id = hook.submit_query("SELECT nope FROM invoice")
    with pytest.raises(DataQueryError, match=f"Data Query job {job_id} failed: .*nope") as info:
        hook.wait_for_query(job_id, timeout_s=10, poll_s=0.2)
    assert info.value.fatal and info.value.query_status == "failed"


def test_a_query_still_running_at_the_timeout_raises_a_retryable_error(fresh_emulator, hook):
    fresh_emulator.dataquery.delay_s = 3  # the job stays `accepted` for 3 s
    job_id = hook.submit_query("SELECT 1")
    with pytest.raises(DataQueryError, match=r"still accepted after 0.5s") as info:
        hook.wait_for_query(job_id, timeout_s=0.5, poll_s=0.1)
    assert not info.value.fatal and info.value.retryable
    assert hook.query_job(job_id)["queryStatus"] in ("accepted", "in_progress")


class _Recorder(BaseHTTPRequestHandler):
    """A second host on loopback that records what each request carried: a bucket serving a pre-signed
    result URL, or (answering /oauth/token too) a Zuora host whose result files are its own."""

    seen: list[dict] = []

    def do_GET(self) -> None:
        type(self).seen.append({"path": self.path, "authorization": self.headers.get("Authorization")})
        self._answer(b"month,count\n2026-01,5\n", "text/csv")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer(b'{"access_token": "tok-123", "expires_in": 3599}', "application/json")

    def _answer(self, body: bytes, kind: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def recorder():
    server = ThreadingHTTPServer(("localhost", 0), _Recorder)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _Recorder.seen = []
    yield f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_presigned_url_on_another_host_gets_no_token(hook, recorder):
    url = f"{recorder}/bucket/result.csv?X-Amz-Signature=abc"
    assert hook.download_query_result({"id": "j", "queryStatus": "completed", "dataFile": url}) == (
        "month,count\n2026-01,5\n"
    )
    assert _Recorder.seen == [{"path": "/bucket/result.csv?X-Amz-Signature=abc", "authorization": None}]


def test_a_result_on_zuoras_host_gets_the_token(recorder, fresh_emulator, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_DEFAULT", json.dumps({
        "conn_type": "http", "host": recorder, "login": "demo-client", "password": "demo-secret",
    }))  # fmt: skip
    zuora = ZuoraHook()
    for data_file in (f"{recorder}/query/files/a.csv", "/query/files/b.csv"):  # absolute, or a path on the host
        assert zuora.download_query_result({"id": "j", "queryStatus": "completed", "dataFile": data_file})
    assert _Recorder.seen == [{"path": "/query/files/a.csv", "authorization": "Bearer tok-123"},
                              {"path": "/query/files/b.csv", "authorization": "Bearer tok-123"}]  # fmt: skip


def test_a_missing_result_file_is_an_error(hook, fresh_emulator):
    with pytest.raises(DataQueryError, match="has no dataFile"):
        hook.download_query_result({"id": "j", "queryStatus": "failed", "dataFile": None})
    gone = f"{fresh_emulator.base_url}/query/files/00000000-0000-0000-0000-000000000000.csv"
    with pytest.raises(Exception, match="HTTP 404 downloading a Data Query result"):
        hook.download_query_result({"id": "j", "queryStatus": "completed", "dataFile": gone})
