"""The real Airflow UI, started the way `make ui` starts it: the login form works, every sync DAG is
listed without import errors, and the start-up pieces (pool, connections' folders) are in place."""

from __future__ import annotations

import json
from pathlib import Path

from scripts.local_env import CONNECTIONS
from scripts.ui import POOL, POOL_SLOTS, ROOT, project_dag_ids

SCREENSHOTS = ROOT / "docs" / "screenshots"
SYNC_DAGS = [d for d in project_dag_ids() if d.startswith(("zuora_crm_", "zuora_erp_"))]


def test_sync_dags_are_the_shipped_families():
    assert "zuora_crm_accounts" in SYNC_DAGS
    assert len(SYNC_DAGS) >= 7, SYNC_DAGS


def test_dag_list_shows_every_sync_dag_without_import_errors(airflow_ui, browser_page):
    page = browser_page
    page.goto("/dags")
    page.get_by_role("button", name="Show table view").click()  # one row per DAG: all fit one screenshot
    for dag_id in SYNC_DAGS:
        page.get_by_role("link", name=dag_id, exact=True).first.wait_for()
    assert airflow_ui.api.get("importErrors")["total_entries"] == 0, airflow_ui.import_errors
    listed = {d["dag_id"] for d in airflow_ui.api.get("dags", limit=1000)["dags"]}
    assert set(SYNC_DAGS) <= listed

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "dag_list.png"))
    assert (SCREENSHOTS / "dag_list.png").stat().st_size > 10_000


def test_home_shows_no_dag_import_errors(airflow_ui, browser_page):
    page = browser_page
    page.goto("/")
    page.get_by_test_id("nav-dags-link").wait_for()
    page.wait_for_load_state("networkidle")
    # The dashboard shows a "Dag Import Error(s)" button when any DAG file fails to import.
    assert page.get_by_text("Dag Import Error").count() == 0


def test_dag_page_offers_trigger(airflow_ui, browser_page):
    page = browser_page
    page.goto("/dags/zuora_crm_accounts")
    page.get_by_test_id("trigger-dag-button").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_text("Trigger Dag - zuora_crm_accounts").wait_for()
    assert dialog.get_by_test_id("trigger-dag-submit").is_visible()


def test_make_ui_startup_from_a_fresh_home(airflow_ui):
    """What `make ui` prepares before standalone starts, checked through the running server."""
    pool = airflow_ui.api.get(f"pools/{POOL}")
    assert pool["slots"] == POOL_SLOTS
    assert pool["description"]
    assert (airflow_ui.home / "airflow.db").exists()
    # The targets' folder and the staging root exist before the first task runs.
    assert airflow_ui.data_dir.is_dir()
    assert (airflow_ui.data_dir / "staging").is_dir()
    env = airflow_ui.standalone.env
    for conn_id, filename in CONNECTIONS.items():
        conn = json.loads(env[f"AIRFLOW_CONN_{conn_id.upper()}"])
        assert Path(conn["host"]) == airflow_ui.data_dir / filename
        assert Path(conn["host"]).parent.is_dir()
    assert json.loads(env["AIRFLOW_CONN_ZUORA_DEFAULT"])["host"] == airflow_ui.emulator.base_url
    assert env["AIRFLOW_VAR_ZUORA_ETL_SETTLE_SECONDS"] == "0"
    # Bound to loopback only, on the port asked for, with its own home (not the test session's).
    assert airflow_ui.base_url.startswith("http://127.0.0.1:")
    assert env["AIRFLOW__API__HOST"] == "127.0.0.1"
    assert env["AIRFLOW_HOME"] == str(airflow_ui.home)
    # The login printed is the one the server accepts; a wrong one is refused.
    assert airflow_ui.api.token()
    resp = airflow_ui.api.session.post(f"{airflow_ui.base_url}/auth/token",
                                       json={"username": airflow_ui.user, "password": "wrong"}, timeout=30)  # fmt: skip
    assert resp.status_code == 401
