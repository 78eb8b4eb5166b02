"""ZuoraMarkTransferredOperator: flag loaded ERP documents TransferredToAccounting=Yes in Zuora."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, ObjectStoragePath
from airflow.sdk.exceptions import AirflowSkipException

from ..catalog import get_object
from ..errors import fail_fast
from ..manifests import MarkResult
from ..settings import STATE_CONN_ID, ZUORA_CONN_ID
from ..state import FLAGGED, StateStore

if TYPE_CHECKING:
    from ..hooks.zuora import ZuoraHook

# The hook and the pipeline (pandas, pyarrow, the HTTP provider) are imported where used, not here:
# the DAG file that builds this operator stays light to parse (see dag_factory).


class ZuoraMarkTransferredOperator(BaseOperator):
    """Flag the documents the target accepted as transferred (`POST /v1/action/update` for
    invoices, payments and refunds, 50 a call; `PUT` for memos): the load's `accepted_parts`, so a
    document refused, canceled, skipped or never sent is never flagged, nor one already flagged.

    A retried try never flags twice: each batch Zuora accepts is ledgered (`flagged`) at once and
    skipped by the next try, which also asks Zuora for the current flags of what is left (a batch
    accepted just before a crash shows `Yes` there).

    Returns the flagged ids as a staged part: the `readback` steps after it read those documents
    again and load them, so a SQL target holds the flag and the updatedDate marking gave them (an
    API target keeps no flag: nothing is read back). Documents that could not be flagged go to
    dead letters and fail the task after the rest are done, so the run alerts and the next run
    retries them. A dry run flags nothing (skipped).
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
        sink_conn_id: str | None = None,
        zuora_conn_id: str = ZUORA_CONN_ID,
        state_conn_id: str = STATE_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.family, self.zuora_object, self.manifest, self.plan = family, zuora_object, manifest, plan
        self.zuora_conn_id, self.state_conn_id, self.sink_conn_id = zuora_conn_id, state_conn_id, sink_conn_id

    def execute(self, context: Any) -> MarkResult:
        if (self.plan or {}).get("mode") == "dry_run" or self.manifest.get("dry_run"):
            raise AirflowSkipException("dry run: nothing is flagged in Zuora")
        with fail_fast():
            return self._mark(context)

    def _mark(self, context: Any) -> MarkResult:
        from ..hooks.zuora import ZuoraHook
        from ..pipeline import mark_transferred, stage_ids
        from ..sinks import is_http

        obj = get_object(self.zuora_object)
        run_id, state = context["run_id"], StateStore(self.state_conn_id)
        hook = ZuoraHook(self.zuora_conn_id, track_prefix=f"{self.dag_id}.{self.task_id}")
        todo = self._todo(context, hook, obj, state)

        def flagged(ids: list[str]) -> None:
            state.record_outcomes(run_id, self.family, obj.name, FLAGGED, [(i, None) for i in ids])

        marked, failures = mark_transferred(hook, obj, todo, on_flagged=flagged)
        if failures:
            state.dead_letter(run_id, self.family, obj.name, "mark", [(i, reason, None) for i, reason in failures])
        directory = ObjectStoragePath(self.manifest["directory"])
        read_back = [] if self.sink_conn_id and is_http(self.sink_conn_id) else marked
        result: MarkResult = {
            "family": self.family, "object": obj.name, "staging_dir": self.manifest["staging_dir"],
            "directory": str(directory), "parts": stage_ids(directory, "marked-ids", read_back),
            "marked": len(marked), "mark_failed": len(failures), "rows": len(read_back),
        }  # fmt: skip
        self.log.info("%s: %d flagged TransferredToAccounting=Yes, %d failed", obj.name, len(marked), len(failures))
        if failures:
            sample = "; ".join(f"{i}: {r}" for i, r in failures[:3])
            raise RuntimeError(f"{len(failures)} {obj.name} could not be flagged (see dead letters): {sample}")
        return result

    def _todo(self, context: Any, hook: ZuoraHook, obj: Any, state: StateStore) -> list[str]:
        """The accepted documents this try still has to flag."""
        from ..pipeline import flags_in_zuora, read_ids

        accepted = list(dict.fromkeys(read_ids(self.manifest.get("accepted_parts", []))))
        ti = context.get("ti")
        if not accepted or getattr(ti, "try_number", 1) <= 1:
            return accepted
        done = state.flagged(context["run_id"], self.family, obj.name)
        left = [i for i in accepted if i not in done]
        shown = flags_in_zuora(hook, obj, left) if left else {}
        todo = [i for i in left if shown.get(i, "") != "Yes"]
        self.log.info("Retry: %d of %d accepted %s already flagged (%d by an earlier try, %d seen in Zuora)",
                      len(accepted) - len(todo), len(accepted), obj.name, len(accepted) - len(left),
                      len(left) - len(todo))  # fmt: skip
        return todo
