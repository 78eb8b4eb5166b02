"""Which channels are on (their connections exist), what each notifier gets, and masking on send."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from airflow.providers.http.notifications.http import HttpNotifier
from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
from airflow.providers.smtp.notifications.smtp import SmtpNotifier
from zuora_etl.alerts.channels import (
    SLACK_CONN_ID,
    SMTP_CONN_ID,
    WEBHOOK_CONN_ID,
    notifiers,
    recipients,
    send,
)
from zuora_etl.alerts.messages import Alert

ALERT = Alert("task_failed", "Airflow: d.t failed (try 1 of 1)", {"dag": "d", "task": "t", "error": "boom"})


def conn(password: str | None = None, **extra):
    return SimpleNamespace(password=password, extra_dejson=extra)


CONNS = {
    WEBHOOK_CONN_ID: conn("webhook-pass"),
    SLACK_CONN_ID: conn("T000/B000/slack-token-value"),
    SMTP_CONN_ID: conn(None, to=["ops@example.com", "oncall@example.com"], from_email="etl@example.com"),
    "zuora_default": conn("zuora-client-secret"),
}


def lookup_of(present: set[str]):
    return lambda conn_id: CONNS.get(conn_id) if conn_id in present or conn_id == "zuora_default" else None


@pytest.mark.parametrize(
    "present",
    [set(), {WEBHOOK_CONN_ID}, {SLACK_CONN_ID}, {SMTP_CONN_ID}, {WEBHOOK_CONN_ID, SMTP_CONN_ID},
     {WEBHOOK_CONN_ID, SLACK_CONN_ID, SMTP_CONN_ID}],
)  # fmt: skip
def test_a_channel_is_on_when_its_connection_exists(present):
    found = notifiers(ALERT, lookup_of(present))
    assert set(found) == present
    kinds = {WEBHOOK_CONN_ID: HttpNotifier, SLACK_CONN_ID: SlackWebhookNotifier, SMTP_CONN_ID: SmtpNotifier}
    for conn_id, notifier in found.items():
        assert type(notifier) is kinds[conn_id]


def test_each_notifier_gets_the_message_in_its_form():
    found = notifiers(ALERT, lookup_of({WEBHOOK_CONN_ID, SLACK_CONN_ID, SMTP_CONN_ID}))
    hook = found[WEBHOOK_CONN_ID]
    assert hook.http_conn_id == WEBHOOK_CONN_ID and hook.method == "POST"
    assert hook.json["kind"] == "task_failed" and hook.json["dag"] == "d" and hook.json["error"] == "boom"
    json.dumps(hook.json)  # a JSON body
    assert found[SLACK_CONN_ID].slack_webhook_conn_id == SLACK_CONN_ID and "boom" in found[SLACK_CONN_ID].text
    mail = found[SMTP_CONN_ID]
    assert mail.to == ["ops@example.com", "oncall@example.com"] and mail.from_email == "etl@example.com"
    assert mail.subject == ALERT.title and "boom" in mail.html_content and mail.smtp_conn_id == SMTP_CONN_ID


@pytest.mark.parametrize(
    ("extra", "expected"),
    [({"to": ["a@x.io", " b@x.io "]}, ["a@x.io", "b@x.io"]), ({"to": "a@x.io, b@x.io;c@x.io"},
     ["a@x.io", "b@x.io", "c@x.io"]), ({}, []), ({"to": []}, [])],
)  # fmt: skip
def test_email_recipients_come_from_extra_to(extra, expected):
    assert recipients(conn(None, **extra)) == expected


def test_an_smtp_connection_without_recipients_sends_no_mail():
    lookup = {SMTP_CONN_ID: conn(None)}.get
    assert notifiers(ALERT, lookup) == {}


def test_send_masks_every_connection_password_and_goes_on_when_a_channel_fails(monkeypatch):
    bodies: dict[str, str] = {}

    def http_notify(self, context):
        bodies["webhook"] = json.dumps(self.json)

    def slack_notify(self, context):
        raise ConnectionError("refused by http://127.0.0.1/services/T000/B000/slack-token-value")

    def smtp_notify(self, context):
        bodies["smtp"] = self.subject + self.html_content

    monkeypatch.setattr(HttpNotifier, "notify", http_notify)
    monkeypatch.setattr(SlackWebhookNotifier, "notify", slack_notify)
    monkeypatch.setattr(SmtpNotifier, "notify", smtp_notify)
    leaky = Alert("task_failed", "t", {"error": "auth failed for zuora-client-secret and webhook-pass"})
    results = send(leaky, lookup=lookup_of({WEBHOOK_CONN_ID, SLACK_CONN_ID, SMTP_CONN_ID}))
    assert results[WEBHOOK_CONN_ID] == "sent" and results[SMTP_CONN_ID] == "sent"
    assert results[SLACK_CONN_ID].startswith("ConnectionError") and "slack-token-value" not in results[SLACK_CONN_ID]
    for body in bodies.values():
        assert "zuora-client-secret" not in body and "webhook-pass" not in body and "***" in body


def test_send_without_channels_sends_nothing():
    assert send(ALERT, lookup=lambda _: None) == {}
