"""Which alert channels are on, and sending one alert to each of them through Airflow's notifiers.

A channel is on when its connection exists (the contract):

| connection | notifier | what it sends |
| --- | --- | --- |
| `zuora_alerts_webhook` (http) | `HttpNotifier` | a JSON POST to the connection's URL (host, with scheme and path) |
| `zuora_alerts_slack` (slackwebhook) | `SlackWebhookNotifier` | the text to the incoming webhook |
| `zuora_alerts_smtp` (smtp) | `SmtpNotifier` | an e-mail to extra `to` (a list, or comma-separated) |

The e-mail's sender is the SMTP connection's extra `from_email` (default DEFAULT_FROM_EMAIL).

Each notifier gets text already built and masked, and is called through `notify()` (not
`__call__`), so nothing in an error message is ever rendered as a Jinja template.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..settings import SINK_CONNECTIONS, STATE_CONN_ID, ZUORA_CONN_ID
from .messages import Alert, mask, masked

log = logging.getLogger(__name__)

WEBHOOK_CONN_ID = "zuora_alerts_webhook"
SLACK_CONN_ID = "zuora_alerts_slack"
SMTP_CONN_ID = "zuora_alerts_smtp"
CHANNELS = (WEBHOOK_CONN_ID, SLACK_CONN_ID, SMTP_CONN_ID)
# Sender when the SMTP connection names none (extra `from_email`).
DEFAULT_FROM_EMAIL = "zuora-etl@localhost"
# Connections whose passwords an alert must never carry, beyond what Airflow's masker knows.
_SECRET_CONNECTIONS = (ZUORA_CONN_ID, *SINK_CONNECTIONS.values(), STATE_CONN_ID, *CHANNELS)

SENT = "sent"


def get_connection(conn_id: str) -> Any | None:
    """The connection, or None when it does not exist."""
    from airflow.sdk import BaseHook
    from airflow.sdk.exceptions import AirflowNotFoundException

    try:
        return BaseHook.get_connection(conn_id)
    except AirflowNotFoundException:
        return None


def known_secrets(lookup: Callable[[str], Any | None] = get_connection) -> list[str]:
    """The passwords (and a Slack token, a webhook URL's credentials) of the project's connections."""
    found: list[str] = []
    for conn_id in _SECRET_CONNECTIONS:
        try:
            conn = lookup(conn_id)
        except Exception:  # an unreachable secrets backend must not stop the alert
            log.debug("could not read connection %s to mask its password", conn_id, exc_info=True)
            continue
        if conn is not None and conn.password:
            found.append(str(conn.password))
    return found


def recipients(conn: Any) -> list[str]:
    raw = (conn.extra_dejson or {}).get("to")
    if isinstance(raw, str):
        raw = raw.replace(";", ",").split(",")
    return [str(a).strip() for a in raw or [] if str(a).strip()]


def notifiers(alert: Alert, lookup: Callable[[str], Any | None] = get_connection) -> dict[str, Any]:
    """One notifier per channel that is on, keyed by its connection id. `alert` must be masked."""
    from airflow.providers.http.notifications.http import HttpNotifier
    from airflow.providers.slack.notifications.slack_webhook import SlackWebhookNotifier
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier

    out: dict[str, Any] = {}
    if lookup(WEBHOOK_CONN_ID) is not None:
        out[WEBHOOK_CONN_ID] = HttpNotifier(
            http_conn_id=WEBHOOK_CONN_ID,
            method="POST",
            json=alert.payload(),
            headers={"Content-Type": "application/json"},
            extra_options={"timeout": 30},
        )
    if lookup(SLACK_CONN_ID) is not None:
        out[SLACK_CONN_ID] = SlackWebhookNotifier(slack_webhook_conn_id=SLACK_CONN_ID, text=alert.text(), timeout=30)
    smtp = lookup(SMTP_CONN_ID)
    if smtp is not None:
        to = recipients(smtp)
        if to:
            out[SMTP_CONN_ID] = SmtpNotifier(
                to=to,
                from_email=(smtp.extra_dejson or {}).get("from_email") or DEFAULT_FROM_EMAIL,
                subject=alert.title,
                html_content=alert.html(),
                smtp_conn_id=SMTP_CONN_ID,
            )
        else:
            log.error("Connection %s has no extra `to` (a list of addresses): no e-mail sent", SMTP_CONN_ID)
    return out


def send(alert: Alert, context: Any = None, lookup: Callable[[str], Any | None] = get_connection) -> dict[str, str]:
    """Mask `alert` and send it to every channel that is on; never raises. Returns, per channel,
    `sent` or why not (the error's type and masked first line)."""
    secrets = known_secrets(lookup)
    safe = masked(alert, secrets)
    results: dict[str, str] = {}
    for conn_id, notifier in notifiers(safe, lookup).items():
        try:
            notifier.notify(context or {})
            results[conn_id] = SENT
        except Exception as exc:  # one channel down must not silence the others
            results[conn_id] = mask(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", secrets)
            log.error("Alert %r not sent to %s: %s", safe.title, conn_id, results[conn_id])
    if results:
        log.info("Alert %r: %s", safe.title, ", ".join(f"{k} {v}" for k, v in results.items()))
    else:
        log.warning("Alert %r: no alert channel is configured (%s)", safe.title, ", ".join(CHANNELS))
    return results


__all__ = ["CHANNELS", "SLACK_CONN_ID", "SMTP_CONN_ID", "WEBHOOK_CONN_ID", "notifiers", "send"]
