"""zuora_replay: re-sync given records (ids, numbers or open dead letters) of one family's object.

The Airflow DAG is built by zuora_etl.replay_dag from the family files, so that a replay goes
through each family's own chain, mapping and target.
"""

from zuora_etl.replay_dag import build_replay_dag

dag = build_replay_dag()
