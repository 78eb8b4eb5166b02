"""zuora_crm_subscriptions:
Subscriptions with their rate plans, charges and charge tiers for the CRM (what each customer buys,
at what price, until when).

Built from include/families/crm_subscriptions.yaml and the mappings it names; one file per family so that a
broken family or mapping shows as this file's import error and leaves the other Airflow DAGs running.
"""

from zuora_etl.dag_factory import sync_dag

dag = sync_dag("crm_subscriptions")
