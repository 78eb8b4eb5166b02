"""zuora_crm_invoices:
Every invoice (Draft, Posted, Canceled) and its items for the CRM, so that account teams see what
was billed and what is still open.

Built from include/families/crm_invoices.yaml and the mappings it names; one file per family so that a
broken family or mapping shows as this file's import error and leaves the other Airflow DAGs running.
"""

from zuora_etl.dag_factory import sync_dag

dag = sync_dag("crm_invoices")
