"""zuora_erp_invoices:
Posted invoices and the items of Posted invoices only, for the ERP's receivables.

Built from include/families/erp_invoices.yaml and the mappings it names; one file per family so that a
broken family or mapping shows as this file's import error and leaves the other Airflow DAGs running.
"""

from zuora_etl.dag_factory import sync_dag

dag = sync_dag("erp_invoices")
