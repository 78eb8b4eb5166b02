"""The FastAPI app behind the "Zuora Sync" page, mounted by the plugin in Airflow's API server.

Routes (under the mount prefix, `/zuora-sync`):

- `GET /` the page (HTML); `GET /api/status` the same snapshot as JSON;
- `GET /reports/<kind>/<run>/<file>` a reconciliation or sizing report file (report.html,
  chart.png, CSV) read from the reports root, so that the page shows the chart without a file:// link;
- `POST /api/replay` `{"family": ..., "object": ...}`: triggers `zuora_replay` for every open dead
  letter of that object, as the caller.

A plugin's app is not guarded by Airflow's API auth on its own: every route here resolves the
caller's Airflow login the way the API server does (`security.get_user`: the `Authorization: Bearer`
JWT, else the UI's `_token` cookie already verified by the API server's JWT middleware) and asks
the auth manager whether that user may read DAG runs (every route) or trigger `zuora_replay` (the
replay). An anonymous request gets 401. The replay POST, reachable with the browser's cookie, also
requires a JSON body, the page's custom header and, when the browser sends one, a same-origin
`Origin`/`Sec-Fetch-Site`: a cross-site form or script cannot trigger a replay.

Everything the routes read comes through `Sources`, replaceable in tests; the Airflow-facing
defaults, the snapshot and the page are imported when a request needs them: the plugin is also
loaded by the scheduler, the triggerer and every task, which should not pay for them.
"""

from __future__ import annotations

import html
import mimetypes
import os
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import sqlalchemy as sa
from fastapi import FastAPI, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict

from ..settings import REPLAY_DAG_ID, REPORTS_ROOT_VARIABLE, SIZING_DAG_ID, STATE_CONN_ID
from ..windows import hwm_variable
from . import CSRF_HEADER

if TYPE_CHECKING:
    from airflow.api_fastapi.auth.managers.base_auth_manager import BaseAuthManager
    from airflow.api_fastapi.auth.managers.models.base_user import BaseUser

    from ..families import Family
    from .snapshot import Snapshot

PREFIX = "/zuora-sync"
REPORT_KINDS = ("reconciliation", "sizing")
# A report file's name: no folders, no dot files; only what the reports write.
_REPORT_FILE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]*\.(html|png|csv)$")
_RUN_FOLDER = re.compile(r"^[A-Za-z0-9_+-][A-Za-z0-9_.+-]*$")
# Report HTML is ours and escaped; served with a policy that runs no script and loads only its images.
REPORT_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'self'"


class ReplayUnavailable(RuntimeError):
    """zuora_replay cannot be triggered now (not parsed, import errors, invalid conf)."""


# ---------- what the app reads (Airflow-facing defaults) ----------
_engines: dict[str, sa.Engine] = {}
_engine_lock = threading.Lock()


def state_engine(conn_id: str = STATE_CONN_ID) -> sa.Engine:
    """The state database's engine in the API server. The Task SDK's connection lookup
    (`zuora_etl.db.engine_for`) sees environment and secrets-backend connections only; a connection
    kept in the metadata database is read here through Airflow's models instead."""
    from airflow.exceptions import AirflowNotFoundException
    from airflow.sdk.exceptions import AirflowNotFoundException as SdkNotFound

    from ..db import SQLITE_BUSY_TIMEOUT_S, engine_for

    try:
        return engine_for(conn_id)
    except (AirflowNotFoundException, SdkNotFound):
        pass
    from airflow.models import Connection

    conn = Connection.get_connection_from_secrets(conn_id)
    if conn.conn_type == "sqlite":
        url, kwargs = f"sqlite:///{conn.host}", {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    else:
        url, kwargs = conn.get_uri().replace("postgres://", "postgresql://", 1), {"pool_pre_ping": True}
    with _engine_lock:
        if url not in _engines:
            _engines[url] = sa.create_engine(url, **kwargs)
        return _engines[url]


def airflow_variable(key: str) -> str | None:
    """A Variable as Airflow resolves it in the API server: environment, secrets backends, metadata DB."""
    from airflow.models import Variable

    return Variable.get_variable_from_secrets(key)


def reports_root(value: str | None) -> Any:
    """The reports root (an ObjectStoragePath) as reports.reports_root resolves it, from the Variable's value."""
    from airflow.sdk import ObjectStoragePath

    if not value:
        home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
        value = f"file://{os.path.join(home, 'zuora_reports')}"
    return ObjectStoragePath(value)


def sizing_dag_runs(limit: int = 50) -> list[str]:
    """Run ids of the sizing DAG, newest first, from Airflow's metadata database."""
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        query = sa.select(DagRun.run_id).where(DagRun.dag_id == SIZING_DAG_ID).order_by(DagRun.run_after.desc())
        return list(session.scalars(query.limit(limit)))


def trigger_replay(conf: dict[str, Any], user: BaseUser) -> str:
    """Create a manual run of zuora_replay with `conf`, triggered by `user`, as the API server's
    `POST /dags/{dag_id}/dagRuns` does (the DAG's params validate the conf); return its run id."""
    from airflow.api_fastapi.core_api.datamodels.dag_run import TriggerDAGRunPostBody
    from airflow.exceptions import ParamValidationError
    from airflow.models.dag import DagModel
    from airflow.models.dagbag import DBDagBag
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.types import DagRunTriggeredByType, DagRunType

    with create_session() as session:
        model = session.scalar(sa.select(DagModel).where(~DagModel.is_stale, DagModel.dag_id == REPLAY_DAG_ID))
        if model is None or model.has_import_errors:
            raise ReplayUnavailable(f"{REPLAY_DAG_ID} is not parsed or has import errors")
        dag = DBDagBag().get_latest_version_of_dag(REPLAY_DAG_ID, session=session)
        if dag is None:
            raise ReplayUnavailable(f"{REPLAY_DAG_ID} is not serialized yet")
        try:
            params = TriggerDAGRunPostBody(logical_date=None, conf=conf).validate_context(dag)
            run = dag.create_dagrun(
                run_id=params["run_id"],
                logical_date=params["logical_date"],
                data_interval=params["data_interval"],
                run_after=params["run_after"],
                conf=params["conf"],
                run_type=DagRunType.MANUAL,
                triggered_by=DagRunTriggeredByType.UI,
                triggering_user_name=user.get_name(),
                state=DagRunState.QUEUED,
                partition_key=params["partition_key"],
                partition_date=params["partition_date"],
                session=session,
            )
        except (ParamValidationError, ValueError) as exc:
            raise ReplayUnavailable(str(exc)) from exc
        return run.run_id


def project_families() -> tuple[list[Family], dict[str, str]]:
    """Every family whose file loads, and why the others do not."""
    from ..families import usable_families

    return usable_families()


def airflow_auth_manager() -> BaseAuthManager:
    from airflow.api_fastapi.app import get_auth_manager

    return get_auth_manager()


async def airflow_user(request: Request) -> BaseUser:
    """The caller's Airflow user, resolved as the API server's own routes do; HTTPException 401
    (no or expired credentials) or 403 (an invalid token) otherwise."""
    from airflow.api_fastapi.core_api.security import bearer_scheme, get_user

    return await get_user(request, None, await bearer_scheme(request))


@dataclass
class Sources:
    """Where the app gets what it shows and does; tests replace any of these."""

    families: Callable[[], tuple[list[Family], dict[str, str]]] = project_families
    engine: Callable[[], sa.Engine] = state_engine
    variable: Callable[[str], str | None] = airflow_variable
    reports_root: Callable[[str | None], Any] = reports_root
    sizing_runs: Callable[[], list[str]] = sizing_dag_runs
    trigger: Callable[[dict[str, Any], Any], str] = trigger_replay
    auth_manager: Callable[[], Any] = airflow_auth_manager
    user: Callable[[Request], Any] = airflow_user
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


# ---------- plain helpers ----------
def replay_conf(family: str, obj: str) -> dict[str, Any]:
    """zuora_replay's conf for every open dead letter of one object (params.replay_params' types)."""
    return {"family": family, "object": obj, "ids": [], "dead_letters": True}


def cross_site_reason(headers: Mapping[str, str], allowed_hosts: set[str]) -> str | None:
    """Why a state-changing request looks cross-site (None: it does not). It must carry the page's
    custom header and a JSON body; a browser's `Origin` must name this server, and its
    `Sec-Fetch-Site`, when sent, must be same-origin."""
    if headers.get(CSRF_HEADER.lower()) != "1":
        return f"the {CSRF_HEADER} header is missing"
    if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
        return "the body must be JSON (Content-Type: application/json)"
    if (site := headers.get("sec-fetch-site")) and site not in ("same-origin", "none"):
        return f"a {site} request"
    origin = headers.get("origin")
    if origin is not None and (origin == "null" or urlsplit(origin).netloc.lower() not in allowed_hosts):
        return f"origin {origin} is not this server"
    return None


def _allowed_hosts(request: Request) -> set[str]:
    hosts = {h.strip().lower() for h in (request.headers.get("host"), request.headers.get("x-forwarded-host")) if h}
    try:
        from airflow.configuration import conf

        if base := conf.get("api", "base_url", fallback=None):
            hosts.add(urlsplit(base).netloc.lower())
    except Exception:  # outside an Airflow environment: the Host header only
        pass
    return {h for h in hosts if h}


def _paths(request: Request) -> tuple[str, str]:
    """(where this app is mounted, where the Airflow UI lives), from the request's root path."""
    prefix = request.scope.get("root_path", "").rstrip("/")
    ui_base = prefix.removesuffix(PREFIX) if prefix.endswith(PREFIX) else ""
    return prefix, ui_base


class ReplayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    family: str
    object: str


# ---------- the app ----------
def create_app(sources: Sources | None = None) -> FastAPI:
    src = sources or Sources()
    app = FastAPI(title="Zuora Sync", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.sources = src

    async def login(request: Request) -> Any:
        try:
            return await src.user(request)
        except HTTPException as exc:
            if exc.status_code in (status.HTTP_401_UNAUTHORIZED, status.HTTP_403_FORBIDDEN):
                raise
            raise HTTPException(status.HTTP_401_UNAUTHORIZED, "Not authenticated") from exc

    def may_read(user: Any) -> bool:
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

        return src.auth_manager().is_authorized_dag(method="GET", access_entity=DagAccessEntity.RUN, user=user)

    def may_replay(user: Any) -> bool:
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

        return src.auth_manager().is_authorized_dag(
            method="POST", access_entity=DagAccessEntity.RUN, details=DagDetails(id=REPLAY_DAG_ID), user=user
        )

    async def reader(request: Request) -> Any:
        user = await login(request)
        if not await run_in_threadpool(may_read, user):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this user may not read DAG runs")
        return user

    async def read_snapshot() -> Snapshot:
        """The snapshot, or 503 naming only the failure's type: a driver's message may hold a host."""
        try:
            return await run_in_threadpool(snapshot)
        except Exception as exc:
            detail = f"the state database (connection {STATE_CONN_ID}) could not be read: {type(exc).__name__}"
            raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail) from exc

    def snapshot() -> Snapshot:
        from .snapshot import build_snapshot

        families, broken = src.families()
        variables = {hwm_variable(f.family, o.name): src.variable(hwm_variable(f.family, o.name))
                     for f in families for o in f.objects}  # fmt: skip
        root = src.reports_root(src.variable(REPORTS_ROOT_VARIABLE))
        return build_snapshot(
            families,
            src.engine(),
            {k: v for k, v in variables.items() if v is not None},
            src.clock(),
            reports_root=root,
            sizing_runs=src.sizing_runs(),
            broken_families=broken,
        )

    @app.get("/", response_class=HTMLResponse)
    async def page(request: Request) -> Response:
        prefix, ui_base = _paths(request)
        try:
            user = await reader(request)
        except HTTPException as exc:
            login_url = f"{ui_base}/auth/login?next={quote(str(request.url), safe='')}"
            why = "Log in to Airflow to see this page" if exc.status_code == 401 else "This login may not see this page"
            link = f'<a href="{html.escape(login_url)}">log in</a>'
            body = f"<!doctype html><title>Zuora Sync</title><p>{why}: {link}.</p>"
            return HTMLResponse(body, status_code=exc.status_code)
        try:
            snap = await read_snapshot()
        except HTTPException as exc:
            text = f"<!doctype html><title>Zuora Sync</title><p>{html.escape(exc.detail)}</p>"
            return HTMLResponse(text, exc.status_code)
        can_replay = await run_in_threadpool(may_replay, user)
        from .page import render

        text = render(snap, user=user.get_name(), prefix=prefix, ui_base=ui_base, can_replay=can_replay)
        return HTMLResponse(text, headers={"Cache-Control": "no-store"})

    @app.get("/api/status")
    async def status_json(request: Request) -> JSONResponse:
        await reader(request)
        snap = await read_snapshot()
        return JSONResponse(jsonable_encoder(snap), headers={"Cache-Control": "no-store"})

    @app.get("/reports/{kind}/{run}/{name}")
    async def report_file(kind: str, run: str, name: str, request: Request) -> Response:
        await reader(request)
        if kind not in REPORT_KINDS or not _RUN_FOLDER.match(run) or not _REPORT_FILE.match(name):
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such report file")

        def read() -> bytes | None:
            path = src.reports_root(src.variable(REPORTS_ROOT_VARIABLE)) / kind / run / name
            try:
                return path.read_bytes() if path.is_file() else None
            except OSError:
                return None

        data = await run_in_threadpool(read)
        if data is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, "no such report file")
        media = mimetypes.guess_type(name)[0] or "application/octet-stream"
        headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff",
                   "Content-Security-Policy": REPORT_CSP}  # fmt: skip
        return Response(data, media_type=media, headers=headers)

    @app.post("/api/replay")
    async def replay(request: Request) -> JSONResponse:
        user = await login(request)
        if reason := cross_site_reason(request.headers, _allowed_hosts(request)):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"refused as cross-site: {reason}")
        if not await run_in_threadpool(may_replay, user):
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"this user may not trigger {REPLAY_DAG_ID}")
        try:
            body = ReplayBody.model_validate_json(await request.body())
        except ValueError as exc:
            raise HTTPException(422, 'expected {"family": ..., "object": ...}') from exc

        def open_letters() -> int:
            from .snapshot import open_dead_letter_counts

            families, _ = src.families()
            family = next((f for f in families if f.family == body.family), None)
            if family is None or body.object not in {o.name for o in family.objects}:
                raise HTTPException(status.HTTP_404_NOT_FOUND, f"no object {body.object} in family {body.family}")
            return open_dead_letter_counts(src.engine()).get((body.family, body.object), (0, None))[0]

        count = await run_in_threadpool(open_letters)
        if not count:
            raise HTTPException(status.HTTP_409_CONFLICT, f"{body.object} of {body.family} has no open dead letters")
        conf = replay_conf(body.family, body.object)
        try:
            run_id = await run_in_threadpool(src.trigger, conf, user)
        except ReplayUnavailable as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
        _, ui_base = _paths(request)
        run_link = f"{ui_base}/dags/{REPLAY_DAG_ID}/runs/{quote(run_id, safe='')}"
        answer = {"dag_id": REPLAY_DAG_ID, "run_id": run_id, "run_url": run_link,
                  "conf": conf, "open_dead_letters": count}  # fmt: skip
        return JSONResponse(answer, status_code=status.HTTP_201_CREATED)

    return app
