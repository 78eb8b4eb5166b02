"""The reconciliation's report under the reports root: `reconciliation/<run_id>/`

- `report.html`: a summary table (one row per family and object), then per family a chart of its
  differences by kind and object (PNG, matplotlib's Agg backend) and a sample of differences;
- `summary.csv` and `differences-<family>.csv`: every difference, streamed from the state database.
"""

from __future__ import annotations

import csv
import html
import io
from collections.abc import Sequence
from datetime import datetime

from airflow.sdk import ObjectStoragePath
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .reconciliation_store import ReconciliationStore
from .reports import image, page, report_dir, table, write_bytes, write_text

# Differences shown per family in the HTML; every one is in the family's CSV.
HTML_SAMPLES = 20
KIND_COLUMNS = (("missing", "missing"), ("extra", "extra"), ("stale", "stale"), ("mismatch", "mismatched"))
COLOURS = {"missing": "#d9534f", "extra": "#8e6bbf", "stale": "#f0ad4e", "mismatch": "#5b8def"}


def differences(row: dict) -> int:
    return sum(row[c] for _, c in KIND_COLUMNS)


def _chart(family: str, rows: Sequence[dict]) -> bytes:
    """Horizontal stacked bars: each object's differences by kind, its record counts beside."""
    names = [r["object"] for r in rows]
    # A Figure on the Agg canvas, not pyplot: no global state, no display, safe in any worker thread.
    fig = Figure(figsize=(8, 0.6 * len(rows) + 1.8), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    left = [0] * len(rows)
    for kind, column in KIND_COLUMNS:
        values = [r[column] for r in rows]
        ax.barh(names, values, left=left, color=COLOURS[kind], label=kind)
        left = [a + b for a, b in zip(left, values, strict=True)]
    top = max([*left, 1])
    for i, r in enumerate(rows):
        ax.text(left[i] + top * 0.01, i, f"{differences(r):,} of {r['zuora_count']:,} in Zuora / "
                f"{r['target_count']:,} in target", va="center", fontsize=8)  # fmt: skip
    ax.set_xlim(0, top * 1.6)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # records: no half ticks
    ax.invert_yaxis()
    ax.set_xlabel("records differing")
    ax.set_title(f"{family}: differences by kind")
    ax.spines[["top", "right"]].set_visible(False)
    fig.legend(loc="lower center", ncol=len(KIND_COLUMNS), fontsize=8, frameon=False)  # below, clear of the bars
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _csv(path: ObjectStoragePath, header: Sequence[str], rows) -> int:
    n = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for row in rows:
            writer.writerow([row[h] for h in header])
            n += 1
    return n


def write_report(
    store: ReconciliationStore,
    run_id: str,
    period: tuple[datetime, datetime],
    repair: bool,
    not_compared: dict[str, str],
    root: ObjectStoragePath | None = None,
) -> str:
    """Write the run's report; returns the path of report.html. `not_compared`: family.object ->
    why it has no result (its comparison failed)."""
    folder = report_dir("reconciliation", run_id, root)
    rows = store.summaries(run_id)
    columns = ["family", "object", "in Zuora", "in target", "missing", "extra", "stale", "mismatched", "repaired",
               "left"]  # fmt: skip
    body, classes = [], []
    for r in rows:
        left = differences(r) - r["repaired"]
        body.append([r["family"], r["object"], r["zuora_count"], r["target_count"], r["missing"], r["extra"],
                     r["stale"], r["mismatched"], r["repaired"], left])  # fmt: skip
        classes.append("bad" if left else "good")
    for name, why in not_compared.items():
        family, _, obj = name.partition(".")
        body.append([family, obj, "not compared", why[:200], "", "", "", "", "", ""])
        classes.append("bad")
    summary_csv = [dict(zip(columns, b, strict=True)) for b in body]
    _csv(folder / "summary.csv", columns, summary_csv)
    total = sum(differences(r) for r in rows)
    left_total = total - sum(r["repaired"] for r in rows)
    lo, hi = period
    meta = (f"Run {run_id}. Records whose updatedDate is in [{lo:%Y-%m-%d %H:%M}, {hi:%Y-%m-%d %H:%M}) UTC. "
            f"{total:,} differences" + (f", {left_total:,} left after repair." if repair else ".")
            + (f" {len(not_compared)} objects could not be compared." if not_compared else ""))  # fmt: skip
    sections = [("Summary", table(columns, body, classes))]
    for family in sorted({r["family"] for r in rows}):
        mine = [r for r in rows if r["family"] == family]
        name = f"differences-{family}.csv"
        header = ["family", "object", "id", "kind", "detail"]
        written = _csv(folder / name, header, store.iter_diffs(run_id, family))
        write_bytes(folder / f"chart-{family}.png", _chart(family, mine))
        sample = []
        for d in store.iter_diffs(run_id, family):
            if len(sample) >= HTML_SAMPLES:
                break
            sample.append([d["object"], d["id"], d["kind"], d["detail"]])
        link = f'<p><a href="{html.escape(name)}">{html.escape(name)}</a>: all {written:,} differences.</p>'
        part = image(f"chart-{family}.png", f"{family}: differences by kind and object") + link
        if sample:
            part += table(["object", "id", "kind", "detail"], sample)
        sections.append((family, part))
    return write_text(folder / "report.html", page("Zuora reconciliation", meta, sections))
