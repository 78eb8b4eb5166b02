"""The Airflow UI on this checkout in one command: `make ui` (or `.venv/bin/python -m scripts.ui`).

Starts the bundled Zuora emulator, prepares a project-local Airflow home (`.local/airflow`: metadata
database migrated, pool `zuora_api`), points the connections at the emulator and at SQLite files
under `.local/data/` (folders created first), runs `airflow standalone` on 127.0.0.1 and prints the
URL and the login once the API server answers and the DAGs are parsed. Ctrl-C stops everything.

    UI_PORT=8080 ZUORA_EMULATOR_PORT=8780 .venv/bin/python -m scripts.ui [--scale small]

The test fixtures (`tests/ui/conftest.py`) start the UI with the same functions in a temporary home.
The login printed is the local standalone admin (simple auth manager); Zuora's secrets are never printed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from scripts.local_env import local_connections

ROOT = Path(__file__).resolve().parents[1]
LOCAL = ROOT / ".local"

DEFAULT_UI_PORT = 8080
DEFAULT_EMULATOR_PORT = 8780
POOL = "zuora_api"
# 5 tasks x 8 threads (the connection's max_in_flight) = 40 Object Query calls, Zuora's lowest limit.
POOL_SLOTS = 5
POOL_DESCRIPTION = (
    "Concurrent Zuora API tasks across all DAGs: 5 slots x 8 threads each (max_in_flight) = 40 Object Query "
    "calls, Zuora's lowest concurrency limit"
)
UI_USER = "admin"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"


class StartupError(RuntimeError):
    """A part of the local UI did not come up; the message says which and why."""


def _airflow(env: Mapping[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run one `airflow` CLI command in the given environment; raise with its output on failure."""
    proc = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=dict(env), cwd=ROOT, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip
    if proc.returncode:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise StartupError(f"`airflow {' '.join(args)}` failed (exit {proc.returncode}):\n{tail}")
    return proc


def base_environment(source: Mapping[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without any Airflow setting (AIRFLOW_HOME, AIRFLOW__*, AIRFLOW_CONN_*,
    AIRFLOW_VAR_*): the local UI gets its own home and database, never another session's."""
    env = {k: v for k, v in (os.environ if source is None else source).items() if not k.startswith("AIRFLOW")}
    # `airflow standalone` starts its parts as `airflow ...` from PATH: this interpreter's first.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), str(ROOT / "plugins"), env.get("PYTHONPATH")) if p)
    return env


def prepare_home(
    home: Path, data_dir: Path, zuora_url: str, *, extra_env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Make `home` a ready Airflow home for this project and return the environment to run Airflow in.

    Creates the home and the data folders, migrates the metadata database (SQLite in `home`), creates
    the pool `zuora_api` (the extract and load tasks wait on it: without it they stay "scheduled"
    forever with no error), and sets connections and variables as `AIRFLOW_CONN_*` / `AIRFLOW_VAR_*`
    the way `scripts/local_env.py` does: Zuora at `zuora_url`, targets and state as SQLite files in
    `data_dir`, staging under `data_dir/staging`, settle lag 0 (the emulator is consistent at once).
    `extra_env` is applied last: any Airflow setting, e.g. `AIRFLOW__DATABASE__SQL_ALCHEMY_CONN` for a
    PostgreSQL metadata database (SQLite refuses backfill creation while other runs write to it).
    """
    home = home.resolve()
    data_dir = data_dir.resolve()
    home.mkdir(parents=True, exist_ok=True)
    (data_dir / "staging").mkdir(parents=True, exist_ok=True)
    env = base_environment()
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__CORE__DAGS_FOLDER=str(ROOT / "dags"),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(ROOT / "plugins"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        # Admin -> Connections -> Test (fetches a Zuora token through ZuoraHook for zuora_default).
        AIRFLOW__CORE__TEST_CONNECTION="Enabled",
        # One machine runs the API server, scheduler, DAG processor, triggerer and the tasks: a task's
        # call to the execution API can wait several seconds for a busy API server. 30 s instead of
        # Airflow's 5 keeps a slow answer from failing the task (seen on a loaded 2-core CI machine).
        AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT="30",
        # Re-parse each DAG file every 2 minutes, not 30 s: twelve files re-parsed every 30 s kept a
        # 2-core machine's CPU busy and starved the API server. A DAG file edit shows within 2 minutes.
        AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="120",
        AIRFLOW_VAR_ZUORA_ETL_SETTLE_SECONDS="0",
    )
    env.update(local_connections(zuora_url, data_dir))
    env.update(extra_env or {})
    _airflow(env, "db", "migrate")
    _airflow(env, "pools", "set", POOL, str(POOL_SLOTS), POOL_DESCRIPTION)
    return env


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def _standalone_child_setup() -> None:
    """In the `airflow standalone` child before exec: take SIGINT as Python's KeyboardInterrupt even
    when this process ignores it (a shell's background job does), so that standalone can stop its
    parts; and get that SIGINT from the kernel if this process dies without stopping it (Linux)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    if _LIBC is not None:
        _LIBC.prctl(1, int(signal.SIGINT))  # PR_SET_PDEATHSIG


def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None) if sys.platform.startswith("linux") else None
    except OSError:
        return None


_LIBC = _libc()  # loaded before any fork: the child only calls it


def stop_process(proc: subprocess.Popen, *, first: int = signal.SIGINT, grace: float = 20) -> None:
    """Stop a child started in its own session, and everything it started: `first` (SIGINT lets
    `airflow standalone` stop its parts itself), then SIGTERM, then SIGKILL to the process group."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(first)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)  # the parts that outlived it (scheduler, api-server, task runners)
        except (ProcessLookupError, PermissionError):
            break
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        time.sleep(0.5 if sig == signal.SIGTERM else 0)


@dataclass
class EmulatorProcess:
    """The bundled Zuora emulator as a child process (`python -m include.zuora_emulator serve`)."""

    base_url: str
    proc: subprocess.Popen | None  # None: one was already serving on the port and is reused

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc, first=signal.SIGTERM, grace=10)


def _emulator_answers(base_url: str) -> bool:
    try:
        return requests.get(f"{base_url}/_admin/health", timeout=2).ok
    except requests.RequestException:
        return False


def start_emulator(
    port: int = DEFAULT_EMULATOR_PORT, scale: str = "small", seed: int = 42, timeout: float = 180
) -> EmulatorProcess:
    """Start the emulator on 127.0.0.1:`port` and wait until it answers (or reuse one already there)."""
    base_url = f"http://127.0.0.1:{port}"
    if _emulator_answers(base_url):
        return EmulatorProcess(base_url, None)
    if not port_free(port):
        raise StartupError(f"port {port} is taken by something that is not the Zuora emulator; "
                           "set ZUORA_EMULATOR_PORT to another port")  # fmt: skip
    cmd = [sys.executable, "-m", "include.zuora_emulator", "serve", "--port", str(port), "--scale", scale,
           "--seed", str(seed)]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read() if proc.stdout else ""
            raise StartupError(f"the Zuora emulator exited ({proc.returncode}):\n{out[-2000:]}")
        if _emulator_answers(base_url):
            return EmulatorProcess(base_url, proc)
        time.sleep(0.2)
    stop_process(proc, first=signal.SIGTERM, grace=5)
    raise StartupError(f"the Zuora emulator did not answer on {base_url} within {timeout:.0f} s")


class ApiClient:
    """Airflow 3's public REST API (`/api/v2`) with a JWT from `POST /auth/token`."""

    def __init__(self, base_url: str, user: str, password: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.user = user
        self.password = password
        self.session = requests.Session()
        self._token: str | None = None

    def token(self) -> str:
        if self._token is None:
            resp = self.session.post(f"{self.base_url}/auth/token", json={"username": self.user,
                                     "password": self.password}, timeout=30)  # fmt: skip
            resp.raise_for_status()
            self._token = resp.json()["access_token"]
        return self._token

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """`path` is relative to /api/v2, e.g. "dags/zuora_crm_accounts". Renews an expired token once."""
        url = f"{self.base_url}/api/v2/{path.lstrip('/')}"
        kwargs.setdefault("timeout", 30)
        for attempt in (1, 2):
            resp = self.session.request(method, url, headers={"Authorization": f"Bearer {self.token()}"}, **kwargs)
            if resp.status_code != 401 or attempt == 2:
                return resp
            self._token = None
        return resp

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self.request(method, path, **kwargs)
        if not resp.ok:
            raise requests.HTTPError(f"{method} {path}: HTTP {resp.status_code}: {resp.text[:500]}", response=resp)
        return resp.json()

    def get(self, path: str, **params: Any) -> Any:
        return self._json("GET", path, params=params or None)

    def post(self, path: str, body: Mapping[str, Any]) -> Any:
        return self._json("POST", path, json=dict(body))

    def patch(self, path: str, body: Mapping[str, Any], **params: Any) -> Any:
        return self._json("PATCH", path, json=dict(body), params=params or None)


@dataclass
class Standalone:
    """A running `airflow standalone` (scheduler, dag-processor, triggerer, api-server)."""

    proc: subprocess.Popen
    base_url: str
    user: str
    password: str
    home: Path
    log_path: Path
    env: dict[str, str] = field(repr=False)

    def client(self) -> ApiClient:
        return ApiClient(self.base_url, self.user, self.password)

    def stop(self) -> None:
        stop_process(self.proc)


def read_login(home: Path, user: str = UI_USER) -> str | None:
    """The password the simple auth manager generated for `user` in this home, once written."""
    path = home / PASSWORDS_FILE
    try:
        return json.loads(path.read_text() or "{}").get(user)
    except (OSError, ValueError):
        return None


def start_standalone(
    env: Mapping[str, str], port: int = DEFAULT_UI_PORT, *, log_path: Path | None = None, timeout: float = 240
) -> Standalone:
    """Run `airflow standalone` in `env` (from `prepare_home`) with the API server on 127.0.0.1:`port`;
    return once the API server answers, the scheduler heartbeats and the admin password is written.
    Its output goes to `log_path` (default `$AIRFLOW_HOME/standalone.log`)."""
    if not port_free(port):
        raise StartupError(f"port {port} is already in use on 127.0.0.1; set UI_PORT to another port")
    home = Path(env["AIRFLOW_HOME"])
    base_url = f"http://127.0.0.1:{port}"
    env = dict(env)
    env.update(
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__BASE_URL=base_url,
        # Task runners report to the API server's execution API: the same port, not the default 8080.
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{base_url}/execution/",
    )
    log_path = log_path or home / "standalone.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "airflow", "standalone"], env=env, cwd=home, stdout=log,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=_standalone_child_setup)  # fmt: skip
    ui = Standalone(proc, base_url, UI_USER, "", home, log_path, env)
    deadline = time.monotonic() + timeout
    try:
        while True:
            if proc.poll() is not None:
                raise StartupError(f"airflow standalone exited ({proc.returncode}); {log_path}:\n{_tail(log_path)}")
            if time.monotonic() > deadline:
                raise StartupError(f"airflow standalone was not ready on {base_url} within {timeout:.0f} s; "
                                   f"{log_path}:\n{_tail(log_path)}")  # fmt: skip
            password = read_login(home)
            if password and _healthy(base_url):
                ui.password = password
                return ui
            time.sleep(1)
    except BaseException:
        ui.stop()
        raise


def _healthy(base_url: str) -> bool:
    """The API server answers and reports the metadata database and a heartbeating scheduler."""
    try:
        resp = requests.get(f"{base_url}/api/v2/monitor/health", timeout=5)
        health = resp.json() if resp.ok else {}
    except (requests.RequestException, ValueError):
        return False
    return all(health.get(part, {}).get("status") == "healthy" for part in ("metadatabase", "scheduler"))


def wait_for_dags(client: ApiClient, dag_ids: Iterable[str], timeout: float = 180) -> dict[str, str]:
    """Wait until every DAG in `dag_ids` is parsed or has an import error; return the import errors
    ({file name: error}) seen by then."""
    wanted = set(dag_ids)
    deadline = time.monotonic() + timeout
    while True:
        dags = {d["dag_id"] for d in client.get("dags", limit=1000)["dags"]}
        errors = {Path(e["filename"]).name: e["stack_trace"] for e in client.get("importErrors", limit=1000)[
            "import_errors"]}  # fmt: skip
        missing = {d for d in wanted - dags if f"{d}.py" not in errors}
        if not missing:
            return errors
        if time.monotonic() > deadline:
            raise StartupError(f"DAGs not parsed within {timeout:.0f} s: {sorted(missing)}")
        time.sleep(2)


def project_dag_ids() -> list[str]:
    """The DAG ids this project ships: one file per DAG in dags/, named after its dag_id."""
    return sorted(p.stem for p in (ROOT / "dags").glob("zuora_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default=os.environ.get("UI_SCALE", "small"), help="emulated tenant size")
    args = parser.parse_args(argv)
    port = int(os.environ.get("UI_PORT", DEFAULT_UI_PORT))
    emulator_port = int(os.environ.get("ZUORA_EMULATOR_PORT", DEFAULT_EMULATOR_PORT))
    home, data = LOCAL / "airflow", LOCAL / "data"

    # Ctrl-C, and SIGTERM (e.g. from a process manager), stop the children; also when started as a
    # background job, which inherits SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    emulator: EmulatorProcess | None = None
    ui: Standalone | None = None
    try:
        print(f"Starting the Zuora emulator ({args.scale} tenant) on port {emulator_port} ...", flush=True)
        emulator = start_emulator(emulator_port, args.scale)
        if emulator.proc is None:
            print(f"  reusing the emulator already serving {emulator.base_url}", flush=True)
        print(f"Preparing the Airflow home {home.relative_to(ROOT)} (database, pool {POOL}, connections) ...",
              flush=True)  # fmt: skip
        env = prepare_home(home, data, emulator.base_url)
        print(f"Starting airflow standalone on 127.0.0.1:{port} (log: {(home / 'standalone.log').relative_to(ROOT)})"
              " ...", flush=True)  # fmt: skip
        ui = start_standalone(env, port)
        errors = wait_for_dags(ui.client(), project_dag_ids())
        for name, error in errors.items():
            print(f"DAG import error in {name}:\n{error}", file=sys.stderr)
        print(
            f"\nAirflow UI:  {ui.base_url}\n"
            f"Login:       {ui.user} / {ui.password}   (local standalone admin; kept in {home.relative_to(ROOT)}/)\n"
            f"Zuora:       emulator at {emulator.base_url}\n"
            f"Targets:     {data.relative_to(ROOT)}/ (crm.db, erp.db, state.db; staging in staging/)\n"
            "The DAGs start paused: unpause one, or trigger it (params start/end for a backfill, dry_run).\n"
            "Ctrl-C stops Airflow and the emulator.",
            flush=True,
        )  # fmt: skip
        while ui.proc.poll() is None and (emulator.proc is None or emulator.proc.poll() is None):
            time.sleep(1)
        which = "airflow standalone" if ui.proc.poll() is not None else "the Zuora emulator"
        print(f"{which} stopped unexpectedly; see {ui.log_path}:\n{_tail(ui.log_path)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
        return 0
    except StartupError as exc:
        print(f"make ui: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not leave children behind
        if ui is not None:
            ui.stop()
        if emulator is not None:
            emulator.stop()


if __name__ == "__main__":
    sys.exit(main())
