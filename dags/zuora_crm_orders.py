"""zuora_crm_orders: Orders with their order actions and order line items for the CRM.

Built from include/families/crm_orders.yaml and the mappings it names; one file per family so that a
broken family or mapping shows as this file's import error and leaves the other Airflow DAGs running.
"""

from zuora_etl.dag_factory import sync_dag

dag = sync_dag("crm_orders")
