"""zuora_erp_memos:
Credit memos with their items, and Posted debit memos with the items of Posted debit memos only, for
the ERP.

Built from include/families/erp_memos.yaml and the mappings it names; one file per family so that a
broken family or mapping shows as this file's import error and leaves the other Airflow DAGs running.
"""

from zuora_etl.dag_factory import sync_dag

dag = sync_dag("erp_memos")
