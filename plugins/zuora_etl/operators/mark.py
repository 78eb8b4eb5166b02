"""ZuoraMarkTransferredOperator: flag loaded ERP documents TransferredToAccounting=Yes in Zuora."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, ObjectStoragePath
from airflow.sdk.exceptions import AirflowSkipException

from ..catalog import get_object
from ..errors import fail_fast
from ..hooks.zuora import ZuoraHook
from ..manifests import MarkResult
from ..pipeline import mark_transferred, stage_ids
from ..settings import STATE_CONN_ID, ZUORA_CONN_ID
from ..state import StateStore


class ZuoraMarkTransferredOperator(BaseOperator):
    """Flag the documents a load committed as transferred (`POST /v1/action/update` for invoices,
    payments and refunds, 50 a call; `PUT` for memos). Documents that did not land are never
    flagged; documents already flagged are left alone.

    Returns the flagged ids as a staged part: the `readback` steps after it read those documents
    again and load them, so the target holds the flag and the updatedDate marking gave them.
    Documents that could not be flagged go to dead letters and fail the task after the rest are
    done, so the run alerts and the next run retries them. A dry run flags nothing (skipped).
    """

    template_fields: Sequence[str] = ("manifest", "plan")
    ui_color = "#f8efe2"

    def __init__(
        self,
        *,
        family: str,
        zuora_object: str,
        manifest: Any,
        plan: Any = None,
        zuora_conn_id: str = ZUORA_CONN_ID,
        state_conn_id: str = STATE_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.family, self.zuora_object, self.manifest, self.plan = family, zuora_object, manifest, plan
        self.zuora_conn_id, self.state_conn_id = zuora_conn_id, state_conn_id

    def execute(self, context: Any) -> MarkResult:
        if (self.plan or {}).get("mode") == "dry_run" or self.manifest.get("dry_run"):
            raise AirflowSkipException("dry run: nothing is flagged in Zuora")
        with fail_fast():
            return self._mark(context)

    def _mark(self, context: Any) -> MarkResult:
        obj = get_object(self.zuora_object)
        hook = ZuoraHook(self.zuora_conn_id, track_prefix=f"{self.dag_id}.{self.task_id}")
        marked, failures = mark_transferred(hook, obj, self.manifest)
        if failures:
            StateStore(self.state_conn_id).dead_letter(
                context["run_id"], self.family, obj.name, "mark", [(i, reason, None) for i, reason in failures]
            )
        directory = ObjectStoragePath(self.manifest["directory"])
        result: MarkResult = {
            "family": self.family, "object": obj.name, "staging_dir": self.manifest["staging_dir"],
            "directory": str(directory), "parts": stage_ids(directory, "marked-ids", marked), "marked": len(marked),
            "mark_failed": len(failures), "rows": len(marked),
        }  # fmt: skip
        self.log.info("%s: %d flagged TransferredToAccounting=Yes, %d failed", obj.name, len(marked), len(failures))
        if failures:
            sample = "; ".join(f"{i}: {r}" for i, r in failures[:3])
            raise RuntimeError(f"{len(failures)} {obj.name} could not be flagged (see dead letters): {sample}")
        return result
