"""zuora_sizing: monthly Data Query counts by created month, with transfer, storage and API-call forecasts.

The Airflow DAG is built by zuora_etl.sizing_dag; the report lands under the reports root's
`sizing/<run_id>/`.
"""

from zuora_etl.sizing_dag import build_sizing_dag

dag = build_sizing_dag()
