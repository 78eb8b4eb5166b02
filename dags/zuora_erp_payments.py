"""zuora_erp_payments: Processed payments and refunds for the ERP's cash application.

Built from include/families/erp_payments.yaml and the mappings it names; one file per family so that a
broken family or mapping shows as this file's import error and leaves the other Airflow DAGs running.
"""

from zuora_etl.dag_factory import sync_dag

dag = sync_dag("erp_payments")
