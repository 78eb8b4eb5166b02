"""ZuoraSinkOperator: transformed parts into the target, through the family's sink."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from ..mapping import cached_mapping
from ..pipeline import load
from ..sinks import sink_for
from ..state import STATE_CONN_ID, StateStore


class ZuoraSinkOperator(BaseOperator):
    """Upsert one object's transformed records into a sink connection (SQL: any Airflow SQL
    connection), keeping the newer `updated_date`; ledger each record and dead-letter refusals.

    :param manifest: the transform step's manifest (an XComArg in the sync DAGs)
    :param sink_conn_id: Airflow connection of the target
    :param force: also rewrite rows whose updated_date equals the target's (replay, repair)
    """

    template_fields: Sequence[str] = ("manifest", "sink_conn_id")
    ui_color = "#e8eef8"

    def __init__(
        self,
        *,
        family: str,
        zuora_object: str,
        manifest: Any,
        sink_conn_id: str,
        mapping: str | None = None,
        force: bool = False,
        state_conn_id: str = STATE_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.family, self.zuora_object, self.manifest = family, zuora_object, manifest
        self.sink_conn_id, self.mapping, self.force, self.state_conn_id = sink_conn_id, mapping, force, state_conn_id

    def execute(self, context: Any) -> dict:
        mapping = cached_mapping(self.mapping or self.zuora_object)
        result = load(
            sink_for(self.sink_conn_id), mapping, self.manifest, StateStore(self.state_conn_id), context["run_id"],
            self.family, force=self.force,
        )  # fmt: skip
        self.log.info(
            "%s -> %s.%s: %d loaded, %d unchanged, %d quarantined, %d refused (%.1fs)",
            self.zuora_object, self.sink_conn_id, mapping.table, result["loaded"], result["unchanged"],
            result.get("quarantined", 0), result["rejected"], result["load_seconds"],
        )  # fmt: skip
        return result
