"""ReplayApprovalOperator: a human approves a large replay in the Airflow UI before it runs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.standard.operators.hitl import ApprovalOperator

from ..families import get_family


class ReplayApprovalOperator(ApprovalOperator):
    """Airflow's approval step (Required Actions in the UI), worded from the replay's plan: which
    family and object, how many records, and what approving does. Reject skips the replay."""

    template_fields: Sequence[str] = (*ApprovalOperator.template_fields, "plan")

    def __init__(self, *, plan: Any, **kwargs: Any) -> None:
        kwargs.setdefault("subject", "Approve a replay")
        super().__init__(ignore_downstream_trigger_rules=True, **kwargs)
        self.plan = plan

    def execute(self, context: Any) -> Any:
        plan, params = self.plan or {}, context["params"]
        marks = plan.get("mode") == "replay" and any(o.mark_transferred for o in get_family(plan["family"]).objects)
        self.subject = f"Replay {plan.get('requested', '?')} {params.get('object')} of {plan.get('family')}?"
        self.body = (
            f"Run `{context['run_id']}` asks to re-sync **{plan.get('requested', '?')}** `{params.get('object')}` "
            f"records (and their parts) of family `{plan.get('family')}` from Zuora, overwriting the target's rows"
            f"{' and flagging ERP documents as transferred' if marks else ''}. "
            "No watermark moves. **Approve** to run it; **Reject** skips it."
        )
        return super().execute(context)
