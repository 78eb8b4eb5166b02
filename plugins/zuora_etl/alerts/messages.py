"""What an alert says: built from a task's context (a failure), a run's (a deadline) or the watch
DAG's findings, with every secret masked before it leaves the process.

An `Alert` is plain text fields in a fixed order; each channel renders it its own way (JSON, Slack
text, an e-mail). Masking happens here, once, so no channel can forget it: Airflow's secrets
masker (every connection password and sensitive Variable a task fetched is registered with it),
the passwords of the project's own connections (fetched again here: a deadline callback runs in the
triggerer, where nothing registered them), and anything that looks like a credential assignment
(`password=...`, `client_secret: ...`, `Bearer ...`).
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

log = logging.getLogger(__name__)

MASK = "***"
# An error's first line is what a human reads on a phone; the task log holds the rest.
MAX_ERROR_CHARS = 500
# `key=value` / `key: value` pairs whose value is a credential, and bearer tokens.
_CREDENTIAL = re.compile(
    r"(?i)\b(password|passwd|secret|client_secret|token|access_token|refresh_token|api_key|apikey)"
    r"([\"']?\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|[^\s,;&\"'}]+)"
)
_AUTHORIZATION = re.compile(r"(?i)\b(authorization[\"']?\s*[=:]\s*)[^\n,}]+")
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^/\s:@]+):([^/\s@]+)@")


@dataclass(frozen=True)
class Alert:
    """One message: `kind` (task_failed, run_overdue, dead_letters, watermark_lag, ...), a one-line
    `title`, and named `fields` in the order they are shown."""

    kind: str
    title: str
    fields: dict[str, str] = field(default_factory=dict)

    def text(self) -> str:
        """Plain text: the title, then one `name: value` line per field."""
        return "\n".join([self.title, *(f"{k}: {v}" for k, v in self.fields.items())])

    def payload(self) -> dict[str, Any]:
        """The JSON body of the webhook channel."""
        return {"source": "zuora_etl", "kind": self.kind, "title": self.title, **self.fields, "text": self.text()}

    def html(self) -> str:
        """The e-mail body: a small table, every value escaped."""
        rows = "".join(
            f"<tr><th align='left'>{html.escape(k)}</th><td>{_html_value(v)}</td></tr>" for k, v in self.fields.items()
        )
        return f"<p>{html.escape(self.title)}</p><table>{rows}</table>"


def _html_value(value: str) -> str:
    if value.startswith(("http://", "https://")):
        return f"<a href='{html.escape(value, quote=True)}'>{html.escape(value)}</a>"
    return html.escape(value)


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with every known secret and credential-looking value replaced by ***."""
    out = str(text)
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        out = out.replace(secret, MASK)
        quoted = quote(secret, safe="")
        if quoted != secret:
            out = out.replace(quoted, MASK)
    out = _CREDENTIAL.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", out)
    out = _AUTHORIZATION.sub(lambda m: f"{m.group(1)}{MASK}", out)
    out = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", out)
    out = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{m.group(2)}:{MASK}@", out)
    try:  # what Airflow's own masker knows (connection passwords and secrets fetched in this process)
        from airflow.sdk._shared.secrets_masker import redact

        out = str(redact(out))
    except Exception:  # the masker is best effort on top of the above, never a reason not to alert
        log.debug("Airflow's secrets masker unavailable", exc_info=True)
    return out


def masked(alert: Alert, secrets: Iterable[str] = ()) -> Alert:
    secrets = list(secrets)
    return Alert(alert.kind, mask(alert.title, secrets), {k: mask(v, secrets) for k, v in alert.fields.items()})


def error_line(error: BaseException | str | None) -> str:
    """The error's first non-empty line, with its type (`AirflowFailException: ...`), shortened."""
    if error is None:
        return "(no exception recorded; see the task log)"
    if isinstance(error, BaseException):
        lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
        line = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    else:
        line = next((ln.strip() for ln in str(error).splitlines() if ln.strip()), "(empty error)")
    if len(line) <= MAX_ERROR_CHARS:
        return line
    head = MAX_ERROR_CHARS * 3 // 5  # the start says what failed, the end often where to look (a report)
    return f"{line[:head]} … {line[-(MAX_ERROR_CHARS - head - 3) :]}"


def api_base_url() -> str:
    """The UI's address (`[api] base_url`), for links."""
    from airflow.sdk import conf

    return (conf.get("api", "base_url", fallback="http://localhost:8080/") or "http://localhost:8080/").rstrip("/")


def run_url(dag_id: str, run_id: str) -> str:
    return f"{api_base_url()}/dags/{quote(dag_id, safe='')}/runs/{quote(run_id, safe='')}"


def task_log_url(ti: Any) -> str:
    """The task try's log in the UI: the task instance's own `log_url` when it has one."""
    url = getattr(ti, "log_url", None)
    if isinstance(url, str) and url:
        return url
    link = f"{run_url(ti.dag_id, ti.run_id)}/tasks/{quote(ti.task_id, safe='')}"
    map_index = getattr(ti, "map_index", -1)
    if map_index is not None and map_index >= 0:
        link += f"/mapped/{map_index}"
    try_number = getattr(ti, "try_number", None)
    return link + (f"?try_number={try_number}" if try_number else "")


def failure_alert(context: Mapping[str, Any]) -> Alert:
    """A task that failed for good: DAG, task, run, try (of how many), the error's first line and
    the link to the try's log."""
    ti = context["ti"]
    task = context.get("task") or getattr(ti, "task", None)
    map_index = getattr(ti, "map_index", -1)
    task_label = ti.task_id + (f"[{map_index}]" if map_index is not None and map_index >= 0 else "")
    try_number = getattr(ti, "try_number", None) or 1
    tries = f"{try_number} of {total}" if (total := _total_tries(ti, task, try_number)) else str(try_number)
    error = error_line(context.get("exception"))
    return Alert(
        kind="task_failed",
        title=f"Airflow: {ti.dag_id}.{task_label} failed (try {tries})",
        fields={
            "dag": ti.dag_id,
            "task": task_label,
            "run": ti.run_id,
            "try": tries,
            "error": error,
            "log": task_log_url(ti),
        },
    )


def _total_tries(ti: Any, task: Any, try_number: int) -> int | None:
    """How many tries the task has: `max_tries + 1` (a cleared task gets more), else retries + 1."""
    max_tries = getattr(ti, "max_tries", None)
    if isinstance(max_tries, int) and max_tries + 1 >= try_number:
        return max_tries + 1
    retries = getattr(task, "retries", None)
    return max(int(retries) + 1, try_number) if isinstance(retries, int) else None


def overdue_alert(dag_id: str, dag_run: Mapping[str, Any], deadline_time: Any) -> Alert:
    """A run still going past its deadline (its DAG's average runtime plus the margin)."""
    run_id = str(dag_run.get("dag_run_id") or dag_run.get("run_id") or "?")
    started = dag_run.get("start_date") or dag_run.get("queued_at") or "?"
    return Alert(
        kind="run_overdue",
        title=f"Airflow: {dag_id} run {run_id} is far past its usual duration",
        fields={
            "dag": dag_id,
            "run": run_id,
            "started": str(started),
            "deadline": str(deadline_time),
            "state": str(dag_run.get("state") or "running"),
            "log": run_url(dag_id, run_id),
        },
    )


__all__ = ["Alert", "error_line", "failure_alert", "mask", "masked", "overdue_alert", "run_url", "task_log_url"]
