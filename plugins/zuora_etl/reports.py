"""Reports people read: files under the reports root (Variable `zuora_etl_reports_root`, any
`ObjectStoragePath`; default `$AIRFLOW_HOME/zuora_reports`), one folder per run:
`<kind>/<run_id>/report.html` beside CSV files and charts.

The HTML is plain (one page, inline CSS, no script) so it opens from a bucket, an email or the
Airflow UI alike; tables are escaped here, never by the caller.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Iterable, Sequence
from typing import Any

from airflow.sdk import ObjectStoragePath, Variable

from .settings import REPORTS_ROOT_VARIABLE

STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 70rem; color: #1d2733; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; }
table { border-collapse: collapse; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d5dbe3; padding: .3rem .6rem; text-align: left; }
th { background: #eef2f7; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.bad td { background: #fdecec; } tr.good td { background: #eefaf0; }
.meta { color: #5b6776; } img { max-width: 100%; border: 1px solid #d5dbe3; }
"""


def reports_root() -> ObjectStoragePath:
    root = Variable.get(REPORTS_ROOT_VARIABLE, default=None)
    if not root:
        home = os.environ.get("AIRFLOW_HOME") or os.path.expanduser("~/airflow")
        root = f"file://{os.path.join(home, 'zuora_reports')}"
    return ObjectStoragePath(root)


def run_folder(run_id: str) -> str:
    """A run's folder name: its run id made safe for any file system or bucket."""
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", run_id)


def report_dir(kind: str, run_id: str, root: ObjectStoragePath | None = None) -> ObjectStoragePath:
    """`<root>/<kind>/<run folder>/`, created."""
    folder = (root or reports_root()) / kind / run_folder(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def write_text(path: ObjectStoragePath, text: str) -> str:
    with path.open("w", encoding="utf-8") as f:
        f.write(text)
    return str(path)


def write_bytes(path: ObjectStoragePath, data: bytes) -> str:
    with path.open("wb") as f:
        f.write(data)
    return str(path)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], row_class: Sequence[str] | None = None) -> str:
    """An HTML table; numbers right-aligned; `row_class` per row (`bad`, `good`) colours it."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = []
    for i, row in enumerate(rows):
        cells = "".join(_cell(v) for v in row)
        css = f' class="{row_class[i]}"' if row_class and row_class[i] else ""
        body.append(f"<tr{css}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _cell(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return f'<td class="num">{value:,}</td>'
    return f"<td>{html.escape('' if value is None else str(value))}</td>"


def page(title: str, meta: str, sections: Iterable[tuple[str, str]]) -> str:
    """One HTML page: a title, a line of context, then (heading, HTML body) sections; a heading is
    escaped, a body is HTML built with `table` or `image`."""
    parts = [f"<h2>{html.escape(h)}</h2>\n{body}" for h, body in sections]
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n"
        f'<p class="meta">{html.escape(meta)}</p>\n' + "\n".join(parts) + "\n</body></html>\n"
    )


def image(file_name: str, alt: str) -> str:
    """An image beside the report (a relative link: the folder moves as one)."""
    return f'<p><img src="{html.escape(file_name)}" alt="{html.escape(alt)}"></p>'
