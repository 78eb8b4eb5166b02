"""Airflow plugin: labels the runs of the Zuora DAGs that are not plain syncs (see zuora_etl.run_labels)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from zuora_etl.run_labels import run_labels


class ZuoraRunLabelsPlugin(AirflowPlugin):
    name = "zuora_run_labels"
    listeners = [run_labels]
