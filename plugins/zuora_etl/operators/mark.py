"""ZuoraMarkTransferredOperator: flag loaded ERP documents TransferredToAccounting=Yes in Zuora."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from ..catalog import get_object
from ..errors import fail_fast
from ..hooks.zuora import ZuoraHook
from ..mapping import cached_mapping
from ..pipeline import extract_ids, extraction_fields, load, mark_transferred, transform
from ..sinks import sink_for
from ..staging import run_dir, staging_root
from ..state import STATE_CONN_ID, StateStore


class ZuoraMarkTransferredOperator(BaseOperator):
    """Flag the documents a load committed as transferred (`POST /v1/action/update` for invoices,
    payments and refunds, 50 a call; `PUT` for memos), then read them back and load them again, so
    the target holds the flag and the new updatedDate that marking gave them.

    Documents that could not be flagged go to dead letters and fail the task after the rest are
    done, so the run alerts and the next run retries them.
    """

    template_fields: Sequence[str] = ("manifest",)
    ui_color = "#f8efe2"

    def __init__(
        self,
        *,
        family: str,
        zuora_object: str,
        manifest: Any,
        sink_conn_id: str,
        mapping: str | None = None,
        zuora_conn_id: str = ZuoraHook.default_conn_name,
        state_conn_id: str = STATE_CONN_ID,
        staging_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.family, self.zuora_object, self.manifest = family, zuora_object, manifest
        self.sink_conn_id, self.mapping, self.zuora_conn_id = sink_conn_id, mapping, zuora_conn_id
        self.state_conn_id, self.staging_root = state_conn_id, staging_root

    def execute(self, context: Any) -> dict:
        with fail_fast():
            return self._mark(context)

    def _mark(self, context: Any) -> dict:
        obj = get_object(self.zuora_object)
        hook = ZuoraHook(self.zuora_conn_id, track_prefix=f"{self.dag_id}.{self.task_id}")
        state = StateStore(self.state_conn_id)
        run_id = context["run_id"]
        marked, failures = mark_transferred(hook, obj, self.manifest)
        if failures:
            state.dead_letter(run_id, self.family, obj.name, "mark", [(i, reason, None) for i, reason in failures])
        result = {"object": obj.name, "marked": len(marked), "mark_failed": len(failures), "readback_loaded": 0}
        if marked:
            mapping = cached_mapping(self.mapping or obj.name)
            directory = run_dir(staging_root(self.staging_root), self.family, run_id) / obj.name / "readback"
            fields = extraction_fields(mapping, ["transferredToAccounting"])
            raw = extract_ids(hook, obj, "id", marked, fields, [], directory)
            loaded = load(sink_for(self.sink_conn_id), mapping, transform(mapping, raw, directory), state, run_id,
                          self.family)  # fmt: skip
            result["readback_loaded"] = loaded["loaded"]
        self.log.info(
            "%s: %d flagged TransferredToAccounting=Yes, %d failed, %d reloaded after marking",
            obj.name, len(marked), len(failures), result["readback_loaded"],
        )  # fmt: skip
        if failures:
            sample = "; ".join(f"{i}: {r}" for i, r in failures[:3])
            raise RuntimeError(f"{len(failures)} {obj.name} could not be flagged (see dead letters): {sample}")
        return result
