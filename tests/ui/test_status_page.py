"""The "Zuora Sync" page (plugins/zuora_status.py) in a real standalone Airflow: after a sync of
zuora_crm_accounts it shows, inside the UI (its navigation entry), each object's watermark and the
run's counts; an anonymous request is refused; its Replay button triggers zuora_replay for the open
dead letters as the logged-in user. The screenshot is the one the README shows."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import requests
import sqlalchemy as sa
from zuora_etl.state import StateStore

from tests.ui.ui_support import run_rows, save_screenshot, state_db, unpause, watermarks

DAG_ID, FAMILY = "zuora_crm_accounts", "crm_accounts"
OBJECTS = ("accounts", "contacts")
REPLAY_DAG = "zuora_replay"
PAGE = "/zuora-sync/"


def finished(airflow_ui, poll, dag_id: str, run_id: str, timeout: float = 300) -> dict:
    """The run once success or failed; polled through `poll`, which rides out an API server that is
    slow to answer on a loaded machine (its first task start can take tens of seconds there)."""
    api = airflow_ui.api
    poll(lambda: api.get(f"dags/{dag_id}/dagRuns/{run_id}")["state"] in ("success", "failed"), timeout=timeout,
         interval=2, what=f"{dag_id} run {run_id} to finish")  # fmt: skip
    return api.get(f"dags/{dag_id}/dagRuns/{run_id}")


@pytest.fixture
def synced(airflow_ui, crm, poll):
    """A finished sync of crm_accounts (its run id); its watermarks are deleted afterwards so that
    the other UI tests still start from a tenant never synced."""
    api = airflow_ui.api
    try:
        with unpause(airflow_ui, DAG_ID):
            run_id = api.post(f"dags/{DAG_ID}/dagRuns", {"logical_date": None, "conf": {}})["dag_run_id"]
            final = finished(airflow_ui, poll, DAG_ID, run_id)
            assert final["state"] == "success", airflow_ui.task_states(DAG_ID, run_id)
        yield run_id
    finally:
        for obj in OBJECTS:
            api.request("DELETE", f"variables/zuora_hwm__{FAMILY}__{obj}")


@pytest.fixture
def state(airflow_ui):
    engine = sa.create_engine(f"sqlite:///{state_db(airflow_ui)}", connect_args={"timeout": 30})
    yield StateStore(engine=engine)
    engine.dispose()


def shown(value: str) -> str:
    """How the page shows a watermark Variable: UTC, to the second."""
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def test_anonymous_requests_are_refused(airflow_ui):
    base = airflow_ui.base_url
    for path in (PAGE, f"{PAGE}api/status", f"{PAGE}reports/sizing/any/chart.png"):
        resp = requests.get(base + path, timeout=30, allow_redirects=False)
        assert resp.status_code == 401, f"{path}: {resp.status_code} {resp.text[:200]}"
    resp = requests.post(f"{base}{PAGE}api/replay", json={"family": FAMILY, "object": "accounts"},
                         headers={"X-Zuora-Sync": "1"}, timeout=30)  # fmt: skip
    assert resp.status_code == 401
    # The same JSON answers a caller with an Airflow token.
    ok = requests.get(f"{base}{PAGE}api/status", headers={"Authorization": f"Bearer {airflow_ui.api.token()}"},
                      timeout=30)  # fmt: skip
    assert ok.status_code == 200 and {f["family"] for f in ok.json()["families"]} >= {FAMILY}


def test_status_page_shows_the_sync_and_replays_dead_letters(airflow_ui, browser_page, synced, state, poll):
    api, page, run_id = airflow_ui.api, browser_page, synced
    rows = {r["object"]: r for r in run_rows(airflow_ui, [run_id])}
    assert set(rows) == set(OBJECTS) and rows["accounts"]["rows_loaded"] > 0, rows
    marks = watermarks(airflow_ui)
    # One open dead letter of a real account (as a rejected load leaves it), for the Replay button.
    account = airflow_ui.emulator.store.truth("accounts")[0]["id"]
    state.dead_letter(run_id, FAMILY, "accounts", "load", [(account, "rejected by the target (test)", None)])

    # The navigation entry opens the page inside the UI.
    page.goto("/")
    page.get_by_role("link", name="Zuora Sync").first.click()
    page.wait_for_url(lambda url: url.endswith("/plugin/zuora-sync"))
    frame = page.frame_locator(f'iframe[src*="{PAGE}"]')
    table = frame.locator(f'table.objects[data-family="{FAMILY}"]')
    table.wait_for()
    for obj in OBJECTS:
        row = table.locator(f'tr[data-object="{obj}"]')
        assert row.locator("td.watermark").inner_text() == shown(marks[f"zuora_hwm__{FAMILY}__{obj}"])
        assert row.locator("td.extracted").inner_text() == f"{rows[obj]['rows_extracted']:,}"
        assert row.locator("td.loaded").inner_text() == f"{rows[obj]['rows_loaded']:,}"
        link = row.get_by_role("link", name=run_id)
        assert link.get_attribute("href") == f"/dags/{DAG_ID}/runs/{requests.utils.quote(run_id, safe='')}"
    assert table.locator('tr[data-object="accounts"] td.dead-letters').inner_text().startswith("1")
    frame.get_by_role("heading", name="Last reconciliation").wait_for()
    page.wait_for_load_state("networkidle")
    save_screenshot(page, "status_page.png")

    # Replay: the button triggers zuora_replay for the open dead letters, as the logged-in admin.
    with unpause(airflow_ui, REPLAY_DAG):
        button = table.locator('tr[data-object="accounts"] button.replay')
        button.click()  # asks first
        assert button.inner_text().startswith("Replay 1 open dead letters of accounts?")
        button.click()
        result = table.locator('tr[data-object="accounts"] .replay-result')
        poll(lambda: result.inner_text().strip() not in ("", "triggering..."), timeout=30,
             what="the replay POST to answer")  # fmt: skip
        created = result.locator("a.replay-run")
        assert created.count() == 1, f"the replay failed: {result.inner_text()}"
        replay_id = created.inner_text()
        run = api.get(f"dags/{REPLAY_DAG}/dagRuns/{replay_id}")
        assert run["conf"] == {"family": FAMILY, "object": "accounts", "ids": [], "dead_letters": True}
        assert run["triggering_user_name"] == airflow_ui.user
        final = finished(airflow_ui, poll, REPLAY_DAG, replay_id)
        assert final["state"] == "success", airflow_ui.task_states(REPLAY_DAG, replay_id)
    assert state.open_dead_letter_ids(FAMILY, "accounts") == []
    # The new run's link opens it in the UI (the whole window, not the frame).
    created.click()
    page.wait_for_url(lambda url: url.endswith(f"/dags/{REPLAY_DAG}/runs/{requests.utils.quote(replay_id, safe='')}"))
    page.get_by_text("Success").first.wait_for()
