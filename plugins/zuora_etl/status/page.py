"""The "Zuora Sync" page: a snapshot rendered server-side as plain HTML tables.

Jinja2 with autoescaping (the template is page.html.j2): every value from the state database is
escaped. Links to DAGs and runs point at the Airflow UI (`/dags/<dag_id>`, `/dags/<dag_id>/runs/<run_id>`);
the UI shows this page in a sandboxed frame that may not navigate the window itself, so a small
script follows them through the UI's own document. The replay button's script sends a same-origin
JSON POST with the page's custom header (see app.py), after a second click (no dialogs in the frame).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment

from . import CSRF_HEADER
from .snapshot import Snapshot, format_lag

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 1rem 1.5rem; color: #1d2733; background: #fff; }
h1 { font-size: 1.4rem; margin: .2rem 0; } h2 { font-size: 1.15rem; margin: 1.6rem 0 .3rem; }
h3 { font-size: 1rem; margin: 1rem 0 .2rem; }
table { border-collapse: collapse; margin: .3rem 0 .8rem; }
th, td { border: 1px solid #d5dbe3; padding: .25rem .55rem; text-align: left; vertical-align: top; }
th { background: #eef2f7; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.bad td { background: #fdecec; } .meta { color: #5b6776; } a { color: #0b5cad; }
.ok { color: #1e7a34; } .warn { color: #a35c00; } .err { color: #b3261e; }
button { font: inherit; padding: .1rem .6rem; cursor: pointer; }
img { max-width: 100%; border: 1px solid #d5dbe3; }
"""

TEMPLATE = Path(__file__).with_name("page.html.j2")

_env = Environment(autoescape=True, trim_blocks=True, lstrip_blocks=True)
_template = _env.from_string(TEMPLATE.read_text(encoding="utf-8"))


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


def _day(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d") if value else "-"


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def dag_url(ui_base: str, dag_id: str) -> str:
    return f"{ui_base}/dags/{quote(dag_id, safe='')}"


def run_url(ui_base: str, dag_id: str, run_id: str) -> str:
    return f"{dag_url(ui_base, dag_id)}/runs/{quote(run_id, safe='')}"


def render(
    snapshot: Snapshot,
    *,
    user: str,
    prefix: str,
    ui_base: str = "",
    can_replay: bool = False,
    reconciliation_dag: str = "zuora_reconciliation",
    sizing_dag: str = "zuora_sizing",
) -> str:
    """The page's HTML. `prefix` is where the app is mounted (`/zuora-sync`), `ui_base` the path of
    the Airflow UI ('' at the server's root); `can_replay` shows the replay buttons."""

    def runs_of(family):
        rows = [(o.object, r) for o in family.objects for r in o.runs]
        return sorted(rows, key=lambda x: x[1].finished_at or datetime.min.replace(tzinfo=snapshot.taken_at.tzinfo),
                      reverse=True)  # fmt: skip

    return _template.render(
        s=snapshot,
        style=STYLE,
        user=user,
        prefix=prefix,
        can_replay=can_replay,
        csrf_header=CSRF_HEADER,
        reconciliation_dag=reconciliation_dag,
        sizing_dag=sizing_dag,
        when=_when,
        day=_day,
        num=_num,
        secs=_secs,
        lag=format_lag,
        runs_of=runs_of,
        dag_url=lambda dag_id: dag_url(ui_base, dag_id),
        run_url=lambda dag_id, run_id: run_url(ui_base, dag_id, run_id),
        report_url=lambda path: f"{prefix}/reports/{quote(path)}",
    )
