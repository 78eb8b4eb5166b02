"""Every setting of the library in one place: its default, why, and where it can be overridden.

| setting | default | override |
| --- | --- | --- |
| include directory (families/, mappings/) | `<project>/include` | env `ZUORA_ETL_INCLUDE_DIR` |
| Zuora connection | `zuora_default` | operator argument `zuora_conn_id` |
| state connection | `zuora_etl_state` | operator argument `state_conn_id` |
| sink connections | `zuora_crm_sink`, `zuora_erp_sink` | family `sink_conn_id` |
| Zuora API pool | `zuora_api` | (create it with the slots your tenant allows) |
| active runs of one sync DAG | 3 (one sync, plus backfills and dry runs) | - |
| staging root | `$AIRFLOW_HOME/zuora_staging` | Variable `zuora_etl_staging_root` |
| staging retention of failed runs | 7 days | - |
| settle lag | family `settle_seconds` (120 s) | Variable `zuora_etl_settle_seconds` (every family) |
| overlap below the watermark | family `overlap_seconds` (300 s) | family file |
| first load start | whole history | Variable `zuora_etl_initial_watermark` |
| slices per window | automatic by expected volume | family `slices` (fixed), param `slices` |
| rows per slice (automatic) | 50,000 | - |
| Zuora calls in flight per task process (threads) | 8 | `zuora_default` extra `max_in_flight` |
| most slices of one window | 8 | - |
| threads of one mapped extract | by the expected volume: 5,000 records each, at most 8 | - |
| sub-slices of one thread (taken as threads finish) | 4 | - |
| runs of one Airflow backfill read together | up to 9,000 | - |
| bulk export (Data Query) instead of Object Query | long windows of at least 100,000 records | param `bulk` |
| watermark after a bulk export | the export's snapshot minus 1 h | - |
| replay approval threshold | 1,000 records | Variable `zuora_etl_replay_approval_threshold` |
| dry-run difference samples | 5 per object | - |
| systemic rejection ratio | 0.5 | family `systemic_reject_ratio` |
| systemic rejection minimum rows | 20 | family `systemic_reject_min_rows` |
| rows per staged part | 20,000 | - |
| REST target: what each object sends | `include/endpoints/<object>.yaml` | the file |
| REST target: requests per second | 5 (hooks/erp.py) | sink connection extra `rate_per_second` |
| REST target: calls per UTC day | unlimited | sink connection extra `daily_call_budget` |
| REST target: attempts, backoff, timeout | 6, 1 s, 60 s (hooks/erp.py) | extra `max_attempts` and so on |
| REST target: documents per batch request | 1 (payments, refunds, CRM objects: 50) | endpoint `create.batch_size` |
| which records a family delivers | all | family object `deliver_if` |
| reports root | `$AIRFLOW_HOME/zuora_reports` | Variable `zuora_etl_reports_root` |
| reconciliation differences that fail the run (alert) | 0 | Variable `zuora_etl_reconciliation_alert_threshold` |
| alert channels | off | connections `zuora_alerts_webhook`, `zuora_alerts_slack`, `zuora_alerts_smtp` (extra `to`) |
| run deadline alert | average of the last 10 runs (at least 3) + 30 min | - |
| open dead letters of an object that alert (watch) | over 100 | Variable `zuora_etl_alert_dead_letters_threshold` |
| watermark lag that alerts (watch DAG) | 180 min | Variable `zuora_etl_alert_watermark_lag_minutes` |
| re-alert while a condition lasts (watch DAG) | every 240 min | Variable `zuora_etl_alert_realert_minutes` |
| watch DAG schedule | every 15 min | - |
| retry backoff | first `retry_delay`, then twice as long each retry, at most 1 h | family `retry_delay_minutes` |
| Data Query jobs running at once | 3 | - |
| Data Query job timeout, poll interval | 1 h, 2 s | - |
| sizing forecast | 24 months | - |
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

from . import INCLUDE_DIR

INCLUDE_DIR_ENV = "ZUORA_ETL_INCLUDE_DIR"

ZUORA_CONN_ID = "zuora_default"
STATE_CONN_ID = "zuora_etl_state"
REPLAY_DAG_ID = "zuora_replay"
RECONCILIATION_DAG_ID = "zuora_reconciliation"
SIZING_DAG_ID = "zuora_sizing"
SINK_CONNECTIONS = {"crm": "zuora_crm_sink", "erp": "zuora_erp_sink"}
# Bounds concurrent Zuora calls across all DAGs (Object Query allows 40-80 concurrent requests per
# tenant); every extract and mark task, and every mapped slice, takes one slot.
API_POOL = "zuora_api"

# Runs of one sync DAG at once: one sync (the others wait for its lease, see state.take_sync_lease)
# beside a date-range backfill and a dry run, which move no watermark and must not delay the syncs.
SYNC_MAX_ACTIVE_RUNS = 3

STAGING_ROOT_VARIABLE = "zuora_etl_staging_root"
SETTLE_VARIABLE = "zuora_etl_settle_seconds"
INITIAL_WATERMARK_VARIABLE = "zuora_etl_initial_watermark"
REPLAY_APPROVAL_VARIABLE = "zuora_etl_replay_approval_threshold"
REPORTS_ROOT_VARIABLE = "zuora_etl_reports_root"
RECONCILIATION_ALERT_VARIABLE = "zuora_etl_reconciliation_alert_threshold"

# Retries: each wait twice the one before (5, 10, 20 min for a sync's default 5 min), never more than
# an hour: a Zuora or target outage of minutes is ridden out in the first retries, a longer one is
# not hammered, and a sync's retries end before the hourly schedule has queued many runs behind it.
RETRY_BACKOFF = 2.0
MAX_RETRY_DELAY = timedelta(hours=1)

# Reconciliation differences (all kinds, all objects of a run) above which the run fails, which is
# what alerts: any difference means a record the target does not hold as Zuora does.
RECONCILIATION_ALERT_THRESHOLD = 0

WATCH_DAG_ID = "zuora_watch"
ALERT_DEAD_LETTERS_VARIABLE = "zuora_etl_alert_dead_letters_threshold"
ALERT_WATERMARK_LAG_VARIABLE = "zuora_etl_alert_watermark_lag_minutes"
ALERT_REALERT_VARIABLE = "zuora_etl_alert_realert_minutes"
# Open dead letters of one object above which the watch DAG alerts. A run that leaves records behind
# already fails and alerts (finish); this catches a backlog that stays and grows across runs,
# which a hundred open letters is well past for any tenant (typical: none, or a handful being fixed).
ALERT_DEAD_LETTERS_THRESHOLD = 100
# Watermark lag that alerts: three missed runs of the hourly ERP syncs (six of the half-hourly CRM).
# The lag is measured from the later of the watermark and the end of the last window a sync read
# completely, so an object that simply had no changes in Zuora does not look stale.
ALERT_WATERMARK_LAG = timedelta(minutes=180)
# While a condition lasts, it is sent again this often: a reminder a few times a day, not every
# 15-minute check.
ALERT_REALERT_INTERVAL = timedelta(minutes=240)
# How often the watch DAG looks: well inside the lag threshold, cheap (a few state-DB queries).
WATCH_SCHEDULE = "*/15 * * * *"
# Run deadline: a run still going after its DAG's average runtime (last RUN_DEADLINE_RUNS finished
# runs, at least RUN_DEADLINE_MIN_RUNS of them, else no deadline) plus this margin alerts. Syncs take
# minutes; half an hour past the average is "far past", not jitter or a slow Zuora page.
RUN_DEADLINE_RUNS = 10
RUN_DEADLINE_MIN_RUNS = 3
RUN_DEADLINE_MARGIN = timedelta(minutes=30)
# Data Query: Zuora runs a few jobs per tenant at once and queues or refuses the rest; a job may run
# up to an hour; polling every 2 s costs little against a count that takes seconds to minutes.
DATA_QUERY_MAX_JOBS = 3
DATA_QUERY_TIMEOUT_S = 3600
DATA_QUERY_POLL_S = 2.0
# The sizing forecast's horizon: Zuora's CRM guide asks for a 24-month outlook.
FORECAST_MONTHS = 24

# Default overlap below the watermark: records that share the watermark's second, or that Zuora
# committed a little late with an earlier updatedDate, are read again; the upsert makes it free.
DEFAULT_OVERLAP_S = 300
# Default settle lag: Zuora's read side can trail its writes by some seconds; reading only up to
# now minus this keeps a record committed late from falling behind an advanced watermark.
DEFAULT_SETTLE_S = 120

# Zuora calls one task process sends at once (its slices or chunks of ids read in threads; connection
# extra `max_in_flight` overrides): 8 threads in each of 5 `zuora_api` pool slots make 40, the lowest
# Object Query concurrency limit Zuora gives a tenant. The hooks' gate also pauses before Zuora's own
# Concurrency-Limit-Remaining runs out (hooks/concurrency.py).
MAX_IN_FLIGHT_PER_PROCESS = 8

# Automatic slicing: a window expected to hold more than this many records is split so that each
# mapped extract reads about this many (a few minutes of paging at Zuora's 0.2-1 s per page of 99),
# and no more than MAX_SLICES: each slice holds one `zuora_api` pool slot and one Zuora cursor.
SLICE_TARGET_ROWS = 50_000
MAX_SLICES = 8
# Within one mapped extract, a slice expected to hold more than this many records is cut into
# sub-slices read by threads at once (at most MAX_IN_FLIGHT_PER_PROCESS): 5,000 records are about 50
# pages, under a minute at Zuora's pace, below which a thread's start costs more than it saves.
SUBSLICE_TARGET_ROWS = 5_000
# ...and cut finer than its threads: each thread takes the next sub-slice when it finishes one, so
# sub-slices of uneven size (records crowd toward recent months) even out among the threads. 4 per
# thread kept 100k items at 0.3 s latency from waiting on the one thread holding the newest eighth
# (11,308 of 41,543 invoices); each sub-slice costs at most one partly filled page more.
WINDOWS_PER_THREAD = 4
# A window with no history to estimate from (a first load, a backfill before any sync) longer than
# this is split into FIRST_LOAD_SLICES: volume unknown, but a tenant's history is rarely small.
FIRST_LOAD_SPAN_DAYS = 30
FIRST_LOAD_SLICES = 4

# Bulk first loads: a long window (a first load, a backfill of more than FIRST_LOAD_SPAN_DAYS) whose
# object and children hold at least BULK_MIN_RECORDS records (a Data Query count asked first) is
# read by one Data Query export per object instead of Object Query pages: 100,000 records are about
# 1,000 Object Query calls, a tenth of an API sandbox's daily budget, against a handful for an export.
# Param `bulk` (auto, always, never) overrides.
BULK_CHOICES = ("auto", "always", "never")
BULK_MIN_RECORDS = 100_000
# The watermark after an export stops this far before the export's snapshot: Data Query reads a copy
# of the tenant that may trail live data by minutes, so the next incremental run reads the last hour
# again through Object Query (cheap, and rewriting a row with the same data changes nothing).
BULK_WATERMARK_MARGIN = timedelta(hours=1)
# Records one export is planned to hold: half of Data Query's 500,000-row output limit, room for a
# window whose records bunch (a bill run); an export that reaches the limit is split again (bulk.py).
BULK_ROWS_PER_EXPORT = 250_000

# Runs of one Airflow backfill read by its first run in one range (see planning.backfill_block):
# a year of an hourly DAG, in one message to the API server.
MAX_COALESCED_RUNS = 9_000

# A replay of more records than this waits for a human's approval in the UI: a replay overwrites
# target rows and may flag documents in Zuora, and ten thousand ids pasted by mistake cost hours.
REPLAY_APPROVAL_THRESHOLD = 1_000
# How long an approval waits before the replay gives up (rejects).
REPLAY_APPROVAL_TIMEOUT_H = 24
# Field-level differences a dry run shows per object: enough to see what changes, small for XCom.
DRY_RUN_SAMPLES = 5

# An object whose records fail one mapping column at this share or more is failing systemically
# (a wrong type, a renamed field), not record by record: it fails before anything loads. Half is
# far above any tenant's share of genuinely bad records and far below "every record fails".
SYSTEMIC_REJECT_RATIO = 0.5
# ...when at least this many records failed that column: a handful of bad records among a handful
# read is dead-lettered and retried like any other, not a reason to stop the family.
SYSTEMIC_REJECT_MIN_ROWS = 20

# Rows per raw part: bounds extraction memory (a part of 20k wide rows is a few tens of MB) while
# keeping Parquet files large enough to compress and read efficiently.
PART_ROWS = 20_000
# Threads of one task split that budget (8 threads: parts of 2,500), but parts stay at least this
# large: a Parquet file per few hundred rows would cost more to write and list than it saves.
MIN_PART_ROWS = 2_500
# A failed run's staging is kept for a rerun of its failed tasks; after this long a later
# successful run of the family sweeps it.
STAGING_RETENTION_S = 7 * 86400


def include_dir() -> Path:
    """Where family and mapping YAML live; read at call time so a test or a second project can
    point a DagBag at its own copy."""
    return Path(os.environ.get(INCLUDE_DIR_ENV) or INCLUDE_DIR)
