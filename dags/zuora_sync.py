"""One sync DAG per family YAML in include/families/ (zuora_crm_accounts, zuora_erp_invoices, ...).

Each reads its objects incrementally from Zuora's Object Query API, maps them, upserts them into
the family's sink and, for ERP families, flags the loaded documents as transferred. See each DAG's
docs in the Airflow UI for its objects, filters and tables.
"""

from __future__ import annotations

from zuora_etl.dag_factory import build_sync_dag
from zuora_etl.families import load_families

for _family in load_families():
    globals()[_family.dag_id] = build_sync_dag(_family)
