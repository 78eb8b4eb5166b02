"""zuora_reconciliation: monthly, Zuora against each family's target, id by id; optionally repair.

The Airflow DAG is built by zuora_etl.reconciliation_dag from the family files, so that a repair goes
through each family's own chains, mapping and target.
"""

from zuora_etl.reconciliation_dag import build_reconciliation_dag

dag = build_reconciliation_dag()
