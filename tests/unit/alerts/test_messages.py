"""What a failure alert says, and that no secret survives into it."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException
from zuora_etl.alerts.messages import MASK, Alert, error_line, failure_alert, mask, masked, overdue_alert


def ti(**kw):
    base = {
        "dag_id": "zuora_crm_accounts",
        "task_id": "accounts.extract",
        "run_id": "manual__2026-01-01T00:00:00",
        "try_number": 3,
        "map_index": -1,
        "log_url": "http://ui:8080/dags/zuora_crm_accounts/runs/r/tasks/t",
    }
    return SimpleNamespace(**{**base, **kw})


def test_a_failure_names_dag_task_run_try_error_and_log():
    error = AirflowFailException("Zuora refused the token: 401\nTraceback line that is not shown")
    alert = failure_alert({"ti": ti(), "task": SimpleNamespace(retries=2), "exception": error})
    assert alert.kind == "task_failed"
    assert alert.fields == {
        "dag": "zuora_crm_accounts",
        "task": "accounts.extract",
        "run": "manual__2026-01-01T00:00:00",
        "try": "3 of 3",
        "error": "AirflowFailException: Zuora refused the token: 401",
        "log": "http://ui:8080/dags/zuora_crm_accounts/runs/r/tasks/t",
    }
    assert "zuora_crm_accounts.accounts.extract failed" in alert.title
    assert "Traceback" not in alert.text()


@pytest.mark.parametrize(
    ("map_index", "try_number", "label", "link_tail"),
    [(-1, 1, "accounts.extract", "/tasks/accounts.extract?try_number=1"),
     (2, 2, "accounts.extract[2]", "/tasks/accounts.extract/mapped/2?try_number=2")],
)  # fmt: skip
def test_a_log_link_is_built_from_the_api_base_url_when_the_ti_has_none(monkeypatch, map_index, try_number, label,
                                                                         link_tail):  # fmt: skip
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    alert = failure_alert({"ti": ti(log_url=None, map_index=map_index, try_number=try_number), "exception": None})
    assert alert.fields["task"] == label
    assert alert.fields["log"].startswith("https://airflow.example.com/dags/zuora_crm_accounts/runs/manual__2026")
    assert alert.fields["log"].endswith(link_tail)
    assert alert.fields["error"].startswith("(no exception recorded")


@pytest.mark.parametrize(
    ("max_tries", "try_number", "retries", "shown"),
    [(None, 1, 0, "1 of 1"), (2, 2, 2, "2 of 3"), (5, 4, 2, "4 of 6"), (None, 2, None, "2"), (0, 3, 2, "3 of 3")],
)
def test_the_try_counts_every_try_a_cleared_task_was_given(max_tries, try_number, retries, shown):
    """A cleared task's max_tries grows past its retries; an unknown max_tries falls back to retries."""
    extra = {} if max_tries is None else {"max_tries": max_tries}
    alert = failure_alert({"ti": ti(try_number=try_number, **extra), "task": SimpleNamespace(retries=retries)})
    assert alert.fields["try"] == shown


def test_an_error_line_is_its_first_non_empty_line_shortened():
    assert error_line(ValueError("\n\n  first  \nsecond")) == "ValueError: first"
    assert error_line(RuntimeError()) == "RuntimeError"
    long = error_line(ValueError("start " + "x" * 2000 + " report: s3://bucket/r/report.html"))
    assert len(long) == 500 and " … " in long
    assert long.startswith("ValueError: start x") and long.endswith("report: s3://bucket/r/report.html")


@pytest.mark.parametrize(
    ("text", "secret", "gone"),
    [
        ("token request failed with demo-secret-123 in it", "demo-secret-123", "demo-secret-123"),
        ("url http://host/?p=s%C3%A9cr%C3%A8t-42", "sécrèt-42", "s%C3%A9cr%C3%A8t-42"),
        ("client_secret=abcdef123 and more", "", "abcdef123"),
        ('{"password": "hunter2hunter2"}', "", "hunter2hunter2"),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "", "eyJhbGciOiJIUzI1NiJ9"),
        ("postgresql://etl:pa55word@db:5432/state", "", "pa55word"),
    ],
)
def test_secrets_are_masked(text, secret, gone):
    out = mask(text, [secret] if secret else [])
    assert gone not in out
    assert MASK in out


def test_masking_keeps_ordinary_text():
    assert mask("accounts.extract failed: 500 from /object-query/accounts", ["zz-unrelated"]) == (
        "accounts.extract failed: 500 from /object-query/accounts"
    )


def test_a_masked_alert_masks_title_and_every_field():
    alert = Alert("task_failed", "t s3cr3t-value", {"error": "got s3cr3t-value", "log": "http://x/s3cr3t-value"})
    safe = masked(alert, ["s3cr3t-value"])
    assert "s3cr3t-value" not in safe.text() and "s3cr3t-value" not in str(safe.payload())


def test_the_email_body_escapes_html():
    html = Alert("task_failed", "<b>t</b>", {"error": "<script>alert(1)</script>", "log": "http://x/a?b=1"}).html()
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<a href='http://x/a?b=1'>" in html


def test_an_overdue_run_alert_names_the_run_its_start_and_deadline(monkeypatch):
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://ui:8080")
    run = {"dag_run_id": "scheduled__2026-01-01T01:00:00+00:00", "dag_id": "zuora_erp_invoices",
           "start_date": "2026-01-01T01:00:05Z", "state": "running"}  # fmt: skip
    alert = overdue_alert("zuora_erp_invoices", run, "2026-01-01T01:40:00Z")
    assert alert.kind == "run_overdue"
    assert alert.fields["run"] == "scheduled__2026-01-01T01:00:00+00:00"
    assert alert.fields["started"] == "2026-01-01T01:00:05Z" and alert.fields["deadline"] == "2026-01-01T01:40:00Z"
    assert (
        alert.fields["log"]
        == "http://ui:8080/dags/zuora_erp_invoices/runs/scheduled__2026-01-01T01%3A00%3A00%2B00%3A00"
    )
