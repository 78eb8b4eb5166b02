"""zuora_crm_accounts:
Zuora accounts and their contacts for the CRM: balances, MRR, status and the CRM/ERP ids, so that
sales and support see billing state beside the customer.

Built from include/families/crm_accounts.yaml and the mappings it names; one file per family so that a
broken family or mapping shows as this file's import error and leaves the other Airflow DAGs running.
"""

from zuora_etl.dag_factory import sync_dag

dag = sync_dag("crm_accounts")
