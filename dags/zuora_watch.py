"""zuora_watch: every 15 minutes, alerts on what no failing task reports.

- **Dead letters**: an object with more open dead letters (quarantined, refused, not flagged) than
  Variable `zuora_etl_alert_dead_letters_threshold` (default 100).
- **Watermark lag**: an object of a scheduled family whose data is current only up to longer ago than
  Variable `zuora_etl_alert_watermark_lag_minutes` (default 180): the later of its watermark
  (`zuora_hwm__<family>__<object>`) and the end of the last window a sync read completely, so an
  object without changes in Zuora is not stale. An object never synced is not watched yet.

A condition alerts every channel (`zuora_alerts_webhook`, `zuora_alerts_slack`, `zuora_alerts_smtp`)
when it starts, then again every Variable `zuora_etl_alert_realert_minutes` (default 240) while it
lasts; the state table `zuora_etl_alerts` remembers what was sent. All well: nothing is sent.

The Airflow DAG is built by zuora_etl.watch_dag.
"""

from zuora_etl.watch_dag import build_watch_dag

dag = build_watch_dag(__doc__)
