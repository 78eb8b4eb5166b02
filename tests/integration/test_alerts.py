"""Alerts for real: the project's DAGs run with dag.test() against the Zuora emulator, and every alert
channel points at a local receiver: an HTTP server on loopback (the webhook, and Slack's incoming
webhook URL) and an aiosmtpd SMTP server."""

from __future__ import annotations

import asyncio
import html
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from aiosmtpd.controller import Controller

from tests.sync_harness import SyncEnv, dagbag

ZUORA_SECRET = "demo-secret"  # the emulator's; a wrong one is below
WRONG_SECRET = "wrong-zuora-secret-4711"
WEBHOOK_PASSWORD = "webhook-basic-pass-0815"
SLACK_TOKEN = "T0000/B0000/slack-token-secret-42"
FIELDS = ("dag", "task", "run", "try", "error", "log")


@dataclass
class Received:
    at: float
    path: str
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class HttpReceiver:
    port: int
    got: list[Received] = field(default_factory=list)

    def at(self, path: str) -> list[Received]:
        return [r for r in self.got if r.path == path]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(0)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            receiver.got.append(Received(time.monotonic(), self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")  # what Slack's incoming webhook answers

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    server.shutdown()
    server.server_close()


@dataclass
class Mail:
    at: float
    to: list[str]
    message: Message

    def text(self) -> str:
        parts = self.message.walk() if self.message.is_multipart() else [self.message]
        body = "".join(p.get_payload(decode=True).decode() for p in parts if p.get_content_type() == "text/html")
        return html.unescape(f"{self.message['Subject']}\n{body}")


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, list[Mail]]]:
    mails: list[Mail] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            mails.append(Mail(time.monotonic(), list(envelope.rcpt_tos), message_from_bytes(envelope.content)))
            return "250 Message accepted for delivery"

    port = free_port()
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port, mails
    controller.stop()


@pytest.fixture
def channels(monkeypatch, http_receiver, smtp_server) -> tuple[HttpReceiver, list[Mail]]:
    """All three channels on, each at a local receiver."""
    port, mails = smtp_server
    base = f"http://127.0.0.1:{http_receiver.port}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_ZUORA_ALERTS_WEBHOOK",
        json.dumps({"conn_type": "http", "host": f"{base}/hook", "login": "alerts", "password": WEBHOOK_PASSWORD}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_ZUORA_ALERTS_SLACK",
        json.dumps({"conn_type": "slackwebhook", "host": f"{base}/services", "password": SLACK_TOKEN}),
    )
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_ALERTS_SMTP", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": port,
        "extra": {"to": ["ops@example.com", "oncall@example.com"], "from_email": "airflow@example.com",
                  "disable_ssl": True, "disable_tls": True, "timeout": 10, "retry_limit": 0}}))  # fmt: skip
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.example.com:8080")
    return http_receiver, mails


@pytest.fixture
def env(fresh_emulator, tmp_path, monkeypatch) -> SyncEnv:
    return SyncEnv(fresh_emulator, tmp_path, monkeypatch)


SLACK_PATH = "/services/" + SLACK_TOKEN


def webhooks(receiver: HttpReceiver) -> list[dict]:
    return [r.json() for r in receiver.at("/hook")]


def slacks(receiver: HttpReceiver) -> list[str]:
    return [r.json()["text"] for r in receiver.at(SLACK_PATH)]


def everything(receiver: HttpReceiver, mails: list[Mail]) -> str:
    return "\n".join([*(r.body.decode() for r in receiver.got), *(m.message.as_string() for m in mails)])


def use_zuora(monkeypatch, env: SyncEnv, secret: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_DEFAULT", json.dumps({
        "conn_type": "http", "host": env.emu.base_url, "login": "demo-client", "password": secret,
        "extra": {"backoff_seconds": 0.01, "max_attempts": 2}}))  # fmt: skip


def state_of(obj) -> str:
    return str(getattr(obj.state, "value", obj.state))


def failed_tasks(run) -> dict[str, int]:
    """Task id (with `[map index]` for a mapped one, as the alert names it) -> try number of the run's
    task instances that failed (not upstream_failed)."""
    return {ti.task_id + (f"[{ti.map_index}]" if ti.map_index >= 0 else ""): ti.try_number
            for ti in run.get_task_instances() if state_of(ti) == "failed"}  # fmt: skip


# ---------- a failing task ----------


def test_a_failing_task_sends_exactly_one_alert_to_each_channel_with_every_field_and_no_secret(
    env, channels, monkeypatch
):
    receiver, mails = channels
    use_zuora(monkeypatch, env, WRONG_SECRET)
    run = dagbag().dags["zuora_preflight"].test(run_conf={"zuora_conn_id": "zuora_default"})
    assert state_of(run) == "failed" and failed_tasks(run) == {"preflight": 1}

    (hook,) = webhooks(receiver)
    (slack,) = slacks(receiver)
    (mail,) = mails
    assert hook["kind"] == "task_failed"
    assert {k: hook[k] for k in ("dag", "task", "run", "try")} == {
        "dag": "zuora_preflight", "task": "preflight", "run": run.run_id, "try": "1 of 1"}  # fmt: skip
    assert hook["error"].startswith("AirflowFailException: ") and "\n" not in hook["error"]
    quoted = run.run_id.replace(":", "%3A").replace("+", "%2B")
    assert (
        hook["log"]
        == f"http://airflow.example.com:8080/dags/zuora_preflight/runs/{quoted}/tasks/preflight?try_number=1"
    )
    for name in FIELDS:  # the same fields reach Slack and the e-mail
        assert f"{name}: {hook[name]}" in slack
        assert str(hook[name]) in mail.text()
    assert sorted(mail.to) == ["oncall@example.com", "ops@example.com"]
    assert mail.message["Subject"] == hook["title"]
    sent = everything(receiver, mails)
    for secret in (WRONG_SECRET, ZUORA_SECRET, WEBHOOK_PASSWORD, SLACK_TOKEN.rsplit("/", 1)[-1]):
        assert secret not in sent


def test_a_wrong_zuora_secret_alerts_within_a_minute_of_the_run_start(env, channels, monkeypatch):
    """A sync DAG with its own retries on: a refused token is not retried, so its alert comes at once."""
    receiver, mails = channels
    use_zuora(monkeypatch, env, WRONG_SECRET)
    started = time.monotonic()
    run = dagbag().dags["zuora_crm_accounts"].test(run_conf={"start": None, "end": None, "dry_run": False})
    assert state_of(run) == "failed"
    failed = failed_tasks(run)
    assert failed and all(tries == 1 for tries in failed.values()), failed  # not retried
    hooks = webhooks(receiver)
    assert sorted(h["task"] for h in hooks) == sorted(failed)  # one alert per failed task, no repeats
    first = min(r.at for r in receiver.at("/hook"))
    assert first - started < 60
    assert min(m.at for m in mails) - started < 60 and len(mails) == len(failed)
    assert any("client id and secret" in h["error"] for h in hooks), [h["error"] for h in hooks]
    assert WRONG_SECRET not in everything(receiver, mails)


@pytest.fixture
def quick_retries(tmp_path, monkeypatch) -> None:
    """Family files whose crm_accounts retries twice after about a second (the shipped: 5 min)."""
    from zuora_etl.settings import include_dir

    copy = tmp_path / "include"
    shutil.copytree(include_dir(), copy)
    path = copy / "families" / "crm_accounts.yaml"
    family = yaml.safe_load(path.read_text())
    family.update(retries=2, retry_delay_minutes=0.01)
    path.write_text(yaml.safe_dump(family))
    monkeypatch.setenv("ZUORA_ETL_INCLUDE_DIR", str(copy))


def test_a_task_that_fails_every_try_alerts_once_after_its_last_try(env, channels, monkeypatch, quick_retries):
    from airflow.dag_processing.dagbag import DagBag

    receiver, mails = channels
    env.emu.set_faults({"rules": [{"kind": "5xx", "every": 1}]})  # every Object Query call: a retryable 5xx
    monkeypatch.setenv("AIRFLOW_CONN_ZUORA_DEFAULT", json.dumps({
        "conn_type": "http", "host": env.emu.base_url, "login": "demo-client", "password": ZUORA_SECRET,
        "extra": {"backoff_seconds": 0.01, "max_attempts": 1}}))  # fmt: skip
    bag = DagBag(dag_folder=str(Path(__file__).resolve().parents[2] / "dags" / "zuora_crm_accounts.py"))
    dag = bag.dags["zuora_crm_accounts"]
    assert {t.retries for t in dag.tasks} == {2}
    run = dag.test(run_conf={"start": None, "end": None, "dry_run": False})
    assert state_of(run) == "failed"
    failed = failed_tasks(run)
    retried = {task for task, tries in failed.items() if tries == 3}
    assert retried, f"some task should have used its three tries: {failed}"
    hooks = webhooks(receiver)
    assert sorted(h["task"] for h in hooks) == sorted(failed)  # one alert per failed task, not one per try
    assert len(slacks(receiver)) == len(failed) and len(mails) == len(failed)
    for h in hooks:
        if h["task"] in retried:
            assert h["try"] == "3 of 3"


# ---------- the run deadline's callback ----------


def test_the_deadline_callback_runs_as_the_triggerer_runs_it_and_alerts(channels):
    from airflow.triggers.callback import CallbackTrigger

    receiver, mails = channels
    (alert,) = dagbag().dags["zuora_erp_invoices"].deadline
    context = {"dag_run": {"dag_run_id": "scheduled__2026-01-01T00:00:00+00:00", "dag_id": "zuora_erp_invoices",
                           "start_date": "2026-01-01T00:00:02Z", "state": "running"},
               "deadline": {"id": "0199", "deadline_time": "2026-01-01T00:41:00Z"}}  # fmt: skip
    trigger = CallbackTrigger(alert.callback.path, {**alert.callback.kwargs, "context": context})

    async def events():
        return [e.payload async for e in trigger.run()]

    states = [str(e["state"]) for e in asyncio.run(events())]
    assert states[-1].endswith("success"), states
    (hook,) = webhooks(receiver)
    assert hook["kind"] == "run_overdue" and hook["dag"] == "zuora_erp_invoices"
    assert hook["deadline"] == "2026-01-01T00:41:00Z" and hook["started"] == "2026-01-01T00:00:02Z"
    assert len(slacks(receiver)) == 1 and len(mails) == 1


def test_a_dag_with_three_finished_runs_gets_a_deadline_whose_miss_alerts(env, channels, monkeypatch):
    """Airflow evaluates the deadline when a run is created (average runtime + margin); the scheduler's
    miss handling builds the callback the triggerer runs; the alert reaches the channels."""
    from airflow.models.dagrun import DagRun
    from airflow.models.deadline import Deadline
    from airflow.triggers.callback import CallbackTrigger
    from airflow.utils.session import create_session
    from sqlalchemy import select
    from zuora_etl.settings import RUN_DEADLINE_MARGIN

    receiver, mails = channels
    for _ in range(3):
        assert run_watch() == "success"
    set_var(monkeypatch, "zuora_etl_alert_watermark_lag_minutes", "soon")  # the next run fails: its deadline stays
    run = dagbag().dags["zuora_watch"].test()
    assert state_of(run) == "failed"
    with create_session() as session:
        dag_run = session.scalar(select(DagRun).where(DagRun.dag_id == "zuora_watch", DagRun.run_id == run.run_id))
        (deadline,) = session.scalars(select(Deadline).where(Deadline.dagrun_id == dag_run.id)).all()
        margin = deadline.deadline_time - deadline.created_at
        assert RUN_DEADLINE_MARGIN < margin < RUN_DEADLINE_MARGIN + timedelta(minutes=2)  # + an average of seconds
        deadline.handle_miss(session)  # what the scheduler does once deadline_time has passed
        data = dict(deadline.callback.data)
        session.rollback()  # nothing of this fake miss stays
    before = len(webhooks(receiver))  # the failed run's own failure alert

    async def events():
        return [e.payload async for e in CallbackTrigger(data["path"], data["kwargs"]).run()]

    assert str(asyncio.run(events())[-1]["state"]).endswith("success")
    overdue = webhooks(receiver)[before:]
    assert [(h["kind"], h["dag"], h["run"]) for h in overdue] == [("run_overdue", "zuora_watch", run.run_id)]
    assert overdue[0]["log"].startswith("http://airflow.example.com:8080/dags/zuora_watch/runs/")
    assert len(mails) == before + 1


# ---------- the watch DAG ----------


def run_watch() -> str:
    return state_of(dagbag().dags["zuora_watch"].test())


def set_var(monkeypatch, name: str, value: str) -> None:
    monkeypatch.setenv(f"AIRFLOW_VAR_{name.upper()}", value)


def test_the_watch_is_quiet_when_all_is_well(env, channels):
    receiver, mails = channels
    assert run_watch() == "success"
    assert receiver.got == [] and mails == []


def test_the_watch_alerts_a_lagging_watermark_once_until_the_realert_interval(env, channels, monkeypatch):
    receiver, mails = channels
    stale = (datetime.now(UTC) - timedelta(hours=5)).isoformat()
    set_var(monkeypatch, "zuora_hwm__crm_accounts__accounts", stale)
    assert run_watch() == "success"
    (hook,) = webhooks(receiver)
    assert hook["kind"] == "watermark_lag" and (hook["family"], hook["object"]) == ("crm_accounts", "accounts")
    assert "5 h 0 min behind now, allowed 3 h 0 min" in hook["condition"] and hook["dag"] == "zuora_watch"
    assert len(slacks(receiver)) == 1 and len(mails) == 1

    assert run_watch() == "success"  # still lagging, inside the re-alert interval: nothing new
    assert len(webhooks(receiver)) == 1 and len(mails) == 1

    set_var(monkeypatch, "zuora_etl_alert_realert_minutes", "0")
    assert run_watch() == "success"  # the interval has passed: a reminder
    assert len(webhooks(receiver)) == 2 and len(mails) == 2

    set_var(monkeypatch, "zuora_hwm__crm_accounts__accounts", datetime.now(UTC).isoformat())
    assert run_watch() == "success"  # caught up: quiet, and forgotten
    assert len(webhooks(receiver)) == 2
    from zuora_etl.alerts.sent import SentAlerts

    assert SentAlerts().rows() == []


def test_the_watch_alerts_dead_letters_above_the_threshold_and_not_at_it(env, channels, monkeypatch):
    from zuora_etl.state import StateStore

    receiver, mails = channels
    set_var(monkeypatch, "zuora_etl_alert_dead_letters_threshold", "3")
    store = StateStore()
    store.dead_letter("r1", "erp_invoices", "invoices", "load", [(f"inv{i}", "refused: 422", None) for i in range(2)])
    store.dead_letter("r1", "erp_invoices", "invoices", "transform", [("inv9", "amount: not a number", None)])
    assert run_watch() == "success"
    assert receiver.got == [] and mails == []  # 3 open letters: at the threshold, quiet

    store.dead_letter("r2", "erp_invoices", "invoices", "load", [("inv3", "refused: 422", None)])
    assert run_watch() == "success"
    (hook,) = webhooks(receiver)
    assert hook["kind"] == "dead_letters" and (hook["family"], hook["object"]) == ("erp_invoices", "invoices")
    assert hook["condition"] == "4 open dead letters (3 refused, 1 quarantined), above the threshold 3"
    assert len(slacks(receiver)) == 1 and len(mails) == 1
    assert run_watch() == "success"
    assert len(webhooks(receiver)) == 1  # not again within the re-alert interval


# ---------- reconciliation ----------


def test_reconciliation_differences_above_the_threshold_alert_with_the_counts_and_the_report(
    env, channels, tmp_path, monkeypatch
):
    """The report task's failure is the reconciliation alert: it names the counts and the report."""
    import sqlalchemy as sa

    receiver, mails = channels
    monkeypatch.setenv("AIRFLOW_VAR_ZUORA_ETL_REPORTS_ROOT", f"file://{tmp_path / 'reports'}")
    assert env.run("zuora_erp_invoices") == "success"
    assert receiver.got == [] and mails == []  # a green run alerts nobody
    with env.engine("zuora_erp_sink").begin() as conn:
        ids = conn.execute(sa.text("SELECT id FROM invoices ORDER BY id LIMIT 2")).scalars().all()
        conn.execute(sa.text("DELETE FROM invoices WHERE id IN (:a, :b)"), {"a": ids[0], "b": ids[1]})
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    conf = {"families": ["erp_invoices"], "period_start": "2000-01-01", "period_end": tomorrow, "repair": False}
    assert env.run("zuora_reconciliation", conf, defaults=False) == "failed"
    (hook,) = webhooks(receiver)
    assert (hook["dag"], hook["task"]) == ("zuora_reconciliation", "report")
    assert "2 reconciliation differences above the alert threshold 0" in hook["error"], hook["error"]
    assert "2 missing, 0 extra, 0 stale, 0 mismatched" in hook["error"]
    report = hook["error"].rsplit("report: ", 1)[-1]
    assert report.endswith("report.html") and str(tmp_path / "reports") in report
    assert len(slacks(receiver)) == 1 and len(mails) == 1
