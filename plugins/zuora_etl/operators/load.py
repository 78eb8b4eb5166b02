"""ZuoraSinkOperator: transformed parts into the target, through the family's sink."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from ..conditions import parse_all
from ..liveness import run_alive
from ..manifests import HeldParents, LoadResult, RunPlan, one_manifest
from ..mapping import cached_mapping
from ..settings import REPLAY_DAG_ID, STATE_CONN_ID, SYSTEMIC_REJECT_MIN_ROWS, SYSTEMIC_REJECT_RATIO

if TYPE_CHECKING:
    from ..pipeline import Delivery

# The pipeline's modules (pandas, pyarrow, SQLAlchemy sinks) are imported in `execute`, not here:
# the DAG file that builds this operator stays light to parse (see dag_factory).


class ZuoraSinkOperator(BaseOperator):
    """Deliver one object's transformed records to a sink connection: upserted into any Airflow
    SQL connection (keeping the newer `updated_date`), or sent to a REST API (an `http`
    connection, see sinks/http.py); ledger each record and dead-letter refusals.

    With `deliver_if`, each record is in the family's scope or not: records outside it are
    skipped, or canceled in the target when the family delivered them before (decisions.py).

    In a dry run (the plan's mode) it writes nothing and reports what it would insert, update or
    leave unchanged, with a sample of field-level differences.

    Before it writes anything it checks the object as a whole, and each child nested here: when one
    field fails most records (at least `systemic_reject_ratio` of them and
    `systemic_reject_min_rows`), the object fails, naming the field: a wrong mapping must not
    dead-letter a whole tenant.

    :param manifest: the transforming extract's result (or a list of them, one per mapped slice)
    :param sink_conn_id: Airflow connection of the target
    :param plan: the run's plan: its mode (dry run) and `force` (a replay)
    :param force: also rewrite rows whose updated_date equals the target's (replay, repair)
    :param scope: which records of the object this family loads (e.g. ``invoices where
        status.EQ:Posted``); the sink refuses a table another family fills with other records
    :param parent_result: the parent's load result: records whose parent did not land are held
        back with it; ``parent_key`` names the field that points at the parent
    :param deliver_if: the family's scope conditions (``status.EQ:Posted``), read from carried fields
    :param flag_field: the carried field holding Zuora's transferred flag (objects the mark step
        flags): accepted records without it are staged for the mark step
    :param children: child object -> its transforming extract's result, for targets that nest the
        children in these records' documents; ``child_keys`` names each child's field pointing here
    """

    template_fields: Sequence[str] = ("manifest", "sink_conn_id", "plan", "parent_result", "children")
    ui_color = "#e8eef8"

    def __init__(
        self,
        *,
        family: str,
        zuora_object: str,
        manifest: Any,
        sink_conn_id: str,
        plan: Any = None,
        mapping: str | None = None,
        force: bool = False,
        state_conn_id: str = STATE_CONN_ID,
        scope: str | None = None,
        parent_result: Any = None,
        parent_key: str | None = None,
        deliver_if: Sequence[str] = (),
        flag_field: str | None = None,
        children: dict[str, Any] | None = None,
        child_keys: dict[str, str] | None = None,
        systemic_reject_ratio: float = SYSTEMIC_REJECT_RATIO,
        systemic_reject_min_rows: int = SYSTEMIC_REJECT_MIN_ROWS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.family, self.zuora_object, self.manifest, self.plan = family, zuora_object, manifest, plan
        self.sink_conn_id, self.mapping, self.force, self.state_conn_id = sink_conn_id, mapping, force, state_conn_id
        self.scope, self.parent_result, self.parent_key = scope, parent_result, parent_key
        self.deliver_if, self.flag_field = list(deliver_if), flag_field
        self.children, self.child_keys = dict(children or {}), dict(child_keys or {})
        self.systemic_reject_ratio, self.systemic_reject_min_rows = systemic_reject_ratio, systemic_reject_min_rows

    def delivery(self) -> Delivery:
        from ..pipeline import Delivery

        children = {name: (one_manifest(result), self.child_keys[name]) for name, result in self.children.items()}
        return Delivery(conditions=parse_all(self.deliver_if), flag_field=self.flag_field, children=children)

    def execute(self, context: Any) -> LoadResult:
        from ..pipeline import load, preview
        from ..sinks import sink_for
        from ..state import StateStore

        manifest = one_manifest(self.manifest)
        if manifest is None:
            raise AirflowFailException(f"{self.zuora_object}: no extraction result to load")
        self.check_systemic(manifest)
        plan: RunPlan = self.plan or {}
        mapping = cached_mapping(self.mapping or self.zuora_object)
        state = StateStore(self.state_conn_id)
        sink = sink_for(self.sink_conn_id, state)
        force = self.force or bool(plan.get("force"))
        if plan.get("mode") == "dry_run":
            return preview(sink, mapping, manifest, state, self.family, force=force, delivery=self.delivery())
        if self.scope:
            sink.claim(mapping, self.family, self.scope)
        held: HeldParents | None = None
        if self.parent_result is not None and self.parent_key:
            held = {"object": self.parent_result["object"], "key": self.parent_key,
                    "ids": list(self.parent_result.get("failed_ids", []))}  # fmt: skip
        alive = run_alive(context.get("ti"), (self.dag_id, f"zuora_{self.family}", REPLAY_DAG_ID), context["run_id"])
        run_id, delivery = context["run_id"], self.delivery()
        result = load(
            sink, mapping, manifest, state, run_id, self.family,
            force=force, held_parents=held, alive=alive, delivery=delivery,
        )  # fmt: skip
        self.log.info(
            "%s -> %s.%s: %d loaded, %d unchanged, %d canceled, %d skipped (out of scope), %d quarantined, "
            "%d refused, %d held back, %d dead letters resolved (%.1fs)",
            self.zuora_object, self.sink_conn_id, mapping.table, result["loaded"], result["unchanged"],
            result["canceled"], result["skipped"], result.get("quarantined", 0), result["rejected"], result["held"],
            result["resolved"], result["load_seconds"],
        )  # fmt: skip
        return result

    def check_systemic(self, manifest: dict) -> None:
        """Fail, before anything is written, when this object's records or a nested child's fail
        as a whole (pipeline.systemic_failure)."""
        from ..pipeline import systemic_failure

        if "raw_parts" not in manifest:
            raise AirflowFailException(
                f"{self.zuora_object}: the extract did not map its records (it needs transform=True)"
            )
        results = [manifest, *(one_manifest(r) for r in self.children.values())]
        for result in results:
            why = result and systemic_failure(result, self.systemic_reject_ratio, self.systemic_reject_min_rows)
            if why:
                raise AirflowFailException(why)
