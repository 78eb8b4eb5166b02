"""Helpers shared by the browser tests that trigger runs: the trigger dialog's widgets (react-select
drop-downs, date pickers, the Configuration JSON editor), the SQLite targets the standalone writes to,
the emulator's records, and REST checks (watermarks, runs)."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from scripts.ui import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import Locator, Page

    from tests.ui.conftest import AirflowUI

SCREENSHOTS = ROOT / "docs" / "screenshots"
HWM_PREFIX = "zuora_hwm__"


# ---------- the UI ----------
def open_trigger_dialog(page: Page, dag_id: str) -> Locator:
    """Open the DAG's Trigger dialog; return the dialog (not the date pickers' popovers, also dialogs)."""
    page.goto(f"/dags/{dag_id}")
    page.get_by_test_id("trigger-dag-button").first.click()
    dialog = page.locator("[data-scope=dialog][data-part=content]")
    dialog.get_by_text(f"Trigger Dag - {dag_id}").wait_for()
    return dialog


def field(dialog: Locator, title: str, *, exact: bool = False) -> Locator:
    """The form field (label, widget, help text) whose label is `title`."""
    roots = dialog.locator("[data-scope=field][data-part=root]")
    if exact:
        return roots.filter(has=dialog.page.get_by_text(title, exact=True))
    return roots.filter(has_text=title)


def choose(dialog: Locator, param: str, value: str) -> None:
    """Pick `value` in the enum drop-down of param `param` (a react-select)."""
    dialog.locator(f"#element_{param}").click()
    dialog.page.get_by_role("option", name=value, exact=True).click()
    chosen = dialog.locator(f"input[name=element_{param}]").input_value()
    assert chosen == value, f"{param}: the drop-down holds {chosen!r}, not {value!r}"


def pick_datetime(dialog: Locator, root: Locator, when: datetime, *, close_on: str) -> str:
    """Fill a date picker: open its popover, type the date (YYYY/MM/DD) and time (HH:mm), Enter,
    then click `close_on` (text in the dialog) to close the popover. Returns what the field shows."""
    page = dialog.page
    root.get_by_test_id("datetime-input").click()
    popover = page.locator("[data-scope=popover][data-part=content][data-state=open]")
    popover.get_by_placeholder("YYYY/MM/DD").fill(when.strftime("%Y/%m/%d"))
    time_input = popover.get_by_placeholder("HH:mm")
    time_input.fill(when.strftime("%H:%M"))
    time_input.press("Enter")
    dialog.get_by_text(close_on, exact=True).first.click()
    popover.wait_for(state="hidden")
    return root.get_by_test_id("datetime-input").inner_text()


def shown(when: datetime) -> str:
    """How the date pickers show a UTC datetime, e.g. 'Nov 03, 2026 06:00'."""
    return when.strftime("%b %d, %Y %H:%M")


def set_configuration_json(dialog: Locator, conf: dict[str, Any]) -> None:
    """Replace the text of the Configuration JSON editor (Monaco, under Advanced Options)."""
    page = dialog.page
    dialog.get_by_text("Advanced Options").click()
    editor = field(dialog, "Configuration JSON").locator(".monaco-editor .view-lines")
    editor.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(json.dumps(conf))  # insert_text: no auto-closed brackets or quotes


def trigger(dialog: Locator) -> dict[str, Any]:
    """Click the dialog's Trigger button; return the created run (the POST's answer), or fail."""
    page = dialog.page
    with page.expect_response(lambda r: r.request.method == "POST" and r.url.endswith("/dagRuns")) as created:
        dialog.get_by_test_id("trigger-dag-submit").click()
    resp = created.value
    assert resp.ok, f"the trigger form's POST answered {resp.status}: {resp.text()[:500]}"
    return resp.json()


def run_url(dag_id: str, run_id: str) -> str:
    return f"/dags/{dag_id}/runs/{quote(run_id, safe='')}"


def save_screenshot(target: Page | Locator, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    target.screenshot(path=str(path))
    assert path.stat().st_size > 10_000, f"{name} looks empty"
    return path


# ---------- the targets and the emulator ----------
def crm_db(ui: AirflowUI) -> Path:
    """The CRM target's SQLite file, from the connection the standalone runs with."""
    return Path(json.loads(ui.standalone.env["AIRFLOW_CONN_ZUORA_CRM_SINK"])["host"])


def state_db(ui: AirflowUI) -> Path:
    return Path(json.loads(ui.standalone.env["AIRFLOW_CONN_ZUORA_ETL_STATE"])["host"])


def _tables(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]


def target_ids(db: Path, table: str) -> set[str]:
    """The ids in a target table (empty when the table does not exist yet)."""
    if not db.exists():
        return set()
    with closing(sqlite3.connect(db)) as conn:
        if table not in _tables(conn):
            return set()
        return {r[0] for r in conn.execute(f'SELECT id FROM "{table}"')}


def clear_target(db: Path) -> None:
    """Empty the target's data tables (its zuora_etl_* bookkeeping stays): each test then sees only
    what its own run loaded, and the other UI tests (the dry run asserts an empty CRM) stay unaffected."""
    if not db.exists():
        return
    with closing(sqlite3.connect(db, timeout=30)) as conn, conn:
        for table in _tables(conn):
            if not table.startswith(("zuora_etl_", "sqlite_")):
                conn.execute(f'DELETE FROM "{table}"')


def run_rows(ui: AirflowUI, run_ids: Iterable[str]) -> list[dict[str, Any]]:
    """zuora_etl_runs rows of the given runs."""
    ids = list(run_ids)
    db = state_db(ui)
    if not ids or not db.exists():
        return []
    with closing(sqlite3.connect(db)) as conn:
        conn.row_factory = sqlite3.Row
        if "zuora_etl_runs" not in _tables(conn):
            return []
        marks = ",".join("?" * len(ids))
        return [dict(r) for r in conn.execute(f"SELECT * FROM zuora_etl_runs WHERE run_id IN ({marks})", ids)]


def updated(record: dict[str, Any]) -> datetime:
    """A Zuora record's updatedDate in UTC."""
    return datetime.fromisoformat(record["updatedDate"]).astimezone(UTC)


def updated_in(records: Iterable[dict[str, Any]], lo: datetime, hi: datetime) -> set[str]:
    return {r["id"] for r in records if lo <= updated(r) < hi}


def as_utc(value: str) -> datetime:
    """A datetime from a form or the API ('Z' or an offset) in UTC."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


# ---------- REST ----------
def watermarks(ui: AirflowUI) -> dict[str, str]:
    """Every watermark Variable (zuora_hwm__<family>__<object>) in the metadata database."""
    variables = ui.api.get("variables", limit=1000)["variables"]
    return {v["key"]: v["value"] for v in variables if v["key"].startswith(HWM_PREFIX)}


@contextmanager
def unpause(ui: AirflowUI, dag_id: str) -> Iterator[None]:
    """The DAG unpaused for a test (no cron run starts: use_job_schedule is off), paused again after."""
    ui.api.patch(f"dags/{dag_id}", {"is_paused": False})
    try:
        yield
    finally:
        ui.api.patch(f"dags/{dag_id}", {"is_paused": True})


def run_ids(ui: AirflowUI, dag_id: str) -> set[str]:
    return {r["dag_run_id"] for r in ui.api.get(f"dags/{dag_id}/dagRuns", limit=1000)["dag_runs"]}


def active_runs(ui: AirflowUI) -> list[str]:
    """Runs of any DAG still queued or running."""
    runs = ui.api.get("dags/~/dagRuns", limit=1000, state=["queued", "running"])["dag_runs"]
    return [f"{r['dag_id']}/{r['dag_run_id']}" for r in runs]


def mentions(text: str, *words: str) -> bool:
    return all(re.search(re.escape(w), text, re.IGNORECASE) for w in words)
