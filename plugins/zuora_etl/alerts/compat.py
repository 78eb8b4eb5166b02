"""A workaround for `dag.test()` (and `airflow dags test`) on DAGs with deadline alerts, Airflow 3.3.

`DAG.test()` builds its scheduler-side DAG by serializing the DAG in memory, so that DAG's `deadline`
holds the encoded alerts (dicts), where a DAG read from the metadata database holds the ids of its
`deadline_alert` rows. When the run succeeds, `DagRun.update_state` calls
`DeadlineAlert.get_by_id(alert_id)` for each entry, and a dict fails there (`'dict' object has no
attribute 'hex'`): every successful `dag.test()` of a DAG with a deadline crashes. The scheduler
reads DAGs from the database and never takes that path.

The fix: `get_by_id` also accepts an encoded alert and answers with an unsaved row built from it
(what the caller reads of it is its reference). Ids are looked up as before. It is applied only in
a process that has already loaded Airflow core's models (the test process, the CLI, the DAG
processor), never by importing them into a worker.
"""

from __future__ import annotations

import sys
from typing import Any

_APPLIED = "_zuora_etl_accepts_encoded_alerts"


def accept_encoded_deadline_alerts() -> bool:
    """Apply the fix once, where airflow.models.deadline_alert is loaded; True when in place."""
    module = sys.modules.get("airflow.models.deadline_alert")
    if module is None:
        return False
    model = module.DeadlineAlert
    if getattr(model, _APPLIED, False):
        return True
    original = model.get_by_id  # bound classmethod

    def get_by_id(cls: Any, deadline_alert_id: Any, **kwargs: Any) -> Any:
        if isinstance(deadline_alert_id, dict):
            data = deadline_alert_id.get("__var", deadline_alert_id)
            return cls(
                name=data.get("name"),
                reference=data["reference"],
                interval=data["interval"],
                callback_def=data["callback"],
            )
        return original(deadline_alert_id, **kwargs)

    model.get_by_id = classmethod(get_by_id)
    setattr(model, _APPLIED, True)
    return True


__all__ = ["accept_encoded_deadline_alerts"]
