"""ZuoraTransformOperator: staged Zuora records through the object's mapping, into mapped parts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator, ObjectStoragePath
from airflow.sdk.exceptions import AirflowFailException

from ..manifests import TransformResult
from ..mapping import cached_mapping
from ..pipeline import one_manifest, systemic_failure, transform
from ..settings import SYSTEMIC_REJECT_MIN_ROWS, SYSTEMIC_REJECT_RATIO


class ZuoraTransformOperator(BaseOperator):
    """Apply an object's mapping (``include/mappings/<mapping>.yaml``) to its staged records.

    Rows with a missing required value, a value not of its type or not allowed are quarantined
    with every reason (the load step dead-letters them). When one field fails most records (at
    least `systemic_reject_ratio` of them and `systemic_reject_min_rows`), the object fails here,
    before anything loads, naming the field: a wrong mapping must not dead-letter a whole tenant.

    :param manifest: the extract step's result (or a list of them, one per mapped slice)
    :param mapping: mapping name; default: the object's name
    :param carry: raw fields kept beside the mapped columns (the parent id, for holding back)
    """

    template_fields: Sequence[str] = ("manifest",)
    ui_color = "#f3eefa"

    def __init__(
        self,
        *,
        zuora_object: str,
        manifest: Any,
        mapping: str | None = None,
        carry: Sequence[str] = (),
        systemic_reject_ratio: float = SYSTEMIC_REJECT_RATIO,
        systemic_reject_min_rows: int = SYSTEMIC_REJECT_MIN_ROWS,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.zuora_object, self.manifest, self.mapping, self.carry = zuora_object, manifest, mapping, tuple(carry)
        self.systemic_reject_ratio, self.systemic_reject_min_rows = systemic_reject_ratio, systemic_reject_min_rows

    def execute(self, context: Any) -> TransformResult:
        manifest = one_manifest(self.manifest)
        if manifest is None:
            raise AirflowFailException(f"{self.zuora_object}: no extraction result to transform")
        mapping = cached_mapping(self.mapping or self.zuora_object)
        result = transform(mapping, manifest, ObjectStoragePath(manifest["directory"]), self.carry)
        why = systemic_failure(result, self.systemic_reject_ratio, self.systemic_reject_min_rows)
        if why:
            raise AirflowFailException(why)
        self.log.info("%s: %d records mapped, %d quarantined (%.1fs)", self.zuora_object, result["rows_out"],
                      result["quarantined"], result["transform_seconds"])  # fmt: skip
        return result
