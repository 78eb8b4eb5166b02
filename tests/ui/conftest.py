"""The real Airflow UI for browser and scheduler tests: one `airflow standalone` per test session,
started by `scripts/ui.py` (the same code as `make ui`) in a temporary home on a free port, against
an in-process emulator; and a logged-in headless Chromium page (Playwright driving Debian's
`chromium`, `apt-get install chromium`; Playwright's own browser downloads are not used)."""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import requests

from include.zuora_emulator import Emulator
from scripts.ui import ApiClient, Standalone, free_port, prepare_home, project_dag_ids, start_standalone, wait_for_dags

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = os.environ.get("UI_TEST_CHROMIUM", "/usr/bin/chromium")
TERMINAL_RUN_STATES = {"success", "failed"}


@dataclass
class AirflowUI:
    """A running standalone Airflow for the tests: its URL, its login and a REST client."""

    base_url: str
    user: str
    password: str
    api: ApiClient
    home: Path
    data_dir: Path
    emulator: Emulator
    standalone: Standalone
    import_errors: dict[str, str]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 240, poll: float = 2) -> dict[str, Any]:
        """Poll the run until it is success or failed; fail the test on timeout with its task states."""
        deadline = time.monotonic() + timeout
        while True:
            run = self.api.get(f"dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in TERMINAL_RUN_STATES:
                return run
            if time.monotonic() > deadline:
                states = self.task_states(dag_id, run_id)
                pytest.fail(f"{dag_id} run {run_id} still {run['state']} after {timeout:.0f} s; tasks: {states}")
            time.sleep(poll)

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.api.get(f"dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=1000)["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        """{task_id or task_id[map_index]: state} of the run's task instances."""
        return {ti_key(ti): ti["state"] for ti in self.task_instances(dag_id, run_id)}


def ti_key(ti: dict[str, Any]) -> str:
    """task_id, with [map_index] for a mapped task instance."""
    return ti["task_id"] if ti.get("map_index", -1) < 0 else f"{ti['task_id']}[{ti['map_index']}]"


@contextlib.contextmanager
def _standalone_ui(tmp_path_factory: pytest.TempPathFactory, emu: Emulator, name: str,
                   extra_env: dict[str, str] | None = None) -> Iterator[AirflowUI]:  # fmt: skip
    home = tmp_path_factory.mktemp(f"{name}-airflow-home")
    data_dir = tmp_path_factory.mktemp(f"{name}-data")
    env = prepare_home(home, data_dir, emu.base_url,
                       extra_env={"AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False", **(extra_env or {})})  # fmt: skip
    standalone = start_standalone(env, free_port())
    try:
        api = standalone.client()
        errors = wait_for_dags(api, project_dag_ids())
        yield AirflowUI(standalone.base_url, standalone.user, standalone.password, api, home, data_dir, emu,
                        standalone, errors)  # fmt: skip
    finally:
        standalone.stop()


@pytest.fixture(scope="package")
def airflow_ui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AirflowUI]:
    """`airflow standalone` (scheduler, dag-processor, triggerer, API server and UI) on 127.0.0.1 and a
    free port, in its own AIRFLOW_HOME and metadata DB (not the in-process test session's), prepared
    like `make ui` does, with the DAGs parsed. Cron schedules create no runs here
    (`use_job_schedule` off) so that the only runs are those a test triggers or backfills."""
    with Emulator(scale="small", seed=42) as emu, _standalone_ui(tmp_path_factory, emu, "ui") as ui:
        yield ui


@contextlib.contextmanager
def _postgres_database() -> Iterator[str]:
    """A throwaway PostgreSQL database (ZUORA_TEST_PG_HOST/PORT/USER, default postgres@127.0.0.1:5432,
    trust auth): its SQLAlchemy URL. Skipped where no server answers, failed under CI."""
    import psycopg

    host = os.environ.get("ZUORA_TEST_PG_HOST", "127.0.0.1")
    port = int(os.environ.get("ZUORA_TEST_PG_PORT", "5432"))
    user = os.environ.get("ZUORA_TEST_PG_USER", "postgres")
    try:
        admin = psycopg.connect(host=host, port=port, user=user, dbname="postgres", connect_timeout=3,
                                autocommit=True)  # fmt: skip
    except Exception as exc:
        reason = (f"Airflow backfills need a PostgreSQL metadata DB and none answers on {host}:{port} "
                  f"({type(exc).__name__}); set ZUORA_TEST_PG_HOST/PORT/USER")  # fmt: skip
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide PostgreSQL: {reason}")
        pytest.skip(reason)
    name = f"zuora_ui_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql+psycopg2://{user}@{host}:{port}/{name}"
    finally:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


@pytest.fixture(scope="module")
def airflow_ui_postgres(tmp_path_factory: pytest.TempPathFactory, airflow_ui: AirflowUI) -> Iterator[AirflowUI]:
    """A second standalone, like `airflow_ui` (same emulator, its own home and targets) but on a
    PostgreSQL metadata database, for Airflow backfills; stopped after the module that uses it.
    On SQLite, `POST /api/v2/backfills` answers 503 "Database is locked" whenever the scheduler or
    the DAG processor writes at that moment, and the runs the failed request had created are deleted
    under the scheduler, which then crashes (ObjectDeletedError on a DagRun) and never schedules
    again: every later test would hang."""
    with _postgres_database() as url, _standalone_ui(tmp_path_factory, airflow_ui.emulator, "ui-pg",
                                                     {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url}) as ui:  # fmt: skip
        yield ui


@pytest.fixture
def browser_page_postgres(browser: Browser, airflow_ui_postgres: AirflowUI) -> Iterator[Page]:
    """A logged-in page on the PostgreSQL-backed standalone."""
    yield from _logged_in_page(browser, airflow_ui_postgres)


def _browser_unavailable() -> str | None:
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).exists()):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set UI_TEST_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"the playwright package is not installed ({exc}); make venv installs requirements.txt"
    return None


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    """Headless Chromium (Debian's), skipped with the reason where it is missing, failed under CI."""
    if reason := _browser_unavailable():
        if os.environ.get("CI"):
            pytest.fail(f"CI must provide a browser for the UI tests: {reason}")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def login(page: Page, ui: AirflowUI) -> None:
    """Log in through the real login form of the simple auth manager."""
    page.goto(ui.base_url + "/")
    page.get_by_label("Username").fill(ui.user)
    page.get_by_label("Password").fill(ui.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/auth/login" not in url, timeout=30_000)


@pytest.fixture
def browser_page(browser: Browser, airflow_ui: AirflowUI) -> Iterator[Page]:
    """A fresh logged-in page (own browser context: own cookies) on the standalone UI."""
    yield from _logged_in_page(browser, airflow_ui)


def _logged_in_page(browser: Browser, ui: AirflowUI) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, base_url=ui.base_url)
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        login(page, ui)
        yield page
    finally:
        context.close()


@pytest.fixture
def poll() -> Callable[..., Any]:
    """poll(fn, timeout, interval, what): call fn until it returns something truthy; fail on timeout."""

    def _poll(fn: Callable[[], Any], timeout: float = 60, interval: float = 1, what: str = "condition") -> Any:
        deadline, error = time.monotonic() + timeout, None
        while True:
            try:
                if result := fn():
                    return result
            except requests.RequestException as exc:  # the API server busy (a loaded machine): ask again
                error = exc
            if time.monotonic() > deadline:
                last = f" (last: {error})" if error else ""
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{last}")
            time.sleep(interval)

    return _poll


@pytest.fixture
def invoice_records(airflow_ui) -> tuple[list[dict], list[dict]]:
    """The emulator's invoices (by id, in id order) and invoice items, read from its store (the
    PostgreSQL-backed Airflow shares the emulator)."""
    store = airflow_ui.emulator.store
    return store.truth("invoices"), store.truth("invoice-items")


@pytest.fixture
def crm(airflow_ui):
    """The CRM target, emptied before and after the test."""
    from tests.ui.ui_support import clear_target, crm_db

    db = crm_db(airflow_ui)
    clear_target(db)
    yield db
    clear_target(db)
