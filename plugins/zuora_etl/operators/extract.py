"""ZuoraObjectQueryOperator: one Zuora object, over time windows or by ids, into staging."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator

from ..catalog import ZuoraObject, get_object
from ..errors import fail_fast
from ..hooks.zuora import ZuoraHook
from ..mapping import cached_mapping
from ..pipeline import extract_ids, extract_windows, extraction_fields, read_ids
from ..staging import run_dir, staging_root
from ..state import STATE_CONN_ID, StateStore
from ..windows import Window


class ZuoraObjectQueryOperator(BaseOperator):
    """Extract one Zuora object with Object Query and stage it as Parquet parts.

    Either over windows (`windows`: `[{"lo": iso | None, "hi": iso}, ...]`, one slice each, read in
    parallel) with `updatedDate.GE:lo` and `updatedDate.LT:hi`, or by ids: `ids` (replay) or the ids
    found in a parent's manifest (`parent`, `parent_key`: the items of the invoices just read).
    Returns a manifest: staged parts, row count, newest updatedDate and API calls.

    :param family: family name (staging folder and logs)
    :param zuora_object: catalog name of the object, e.g. ``invoice_items``
    :param windows: time slices to read; or take them from ``plan`` (a sync DAG's plan output)
    :param filters: extra Object Query filters, e.g. ``["status.EQ:Posted"]``
    :param fields: fields to request; default: what the object's mapping reads
    :param retry_dead_letters: also read again, by id, every record of this object that has an open
        dead letter in the family (they were quarantined, refused or held back by an earlier run);
        ids Zuora no longer returns under the filters are listed as `gone_ids`
    """

    template_fields: Sequence[str] = ("windows", "plan", "ids", "parent", "filters", "staging_root")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        family: str,
        zuora_object: str,
        windows: list[dict] | None = None,
        plan: Any = None,
        ids: list[str] | None = None,
        id_field: str = "id",
        parent: Any = None,
        parent_key: str | None = None,
        filters: list[str] | None = None,
        fields: list[str] | None = None,
        mapping: str | None = None,
        extra_fields: list[str] | None = None,
        zuora_conn_id: str = ZuoraHook.default_conn_name,
        staging_root: str | None = None,
        retry_dead_letters: bool = False,
        state_conn_id: str = STATE_CONN_ID,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        get_object(zuora_object)
        self.family, self.zuora_object = family, zuora_object
        self.windows, self.plan, self.ids, self.id_field = windows, plan, ids, id_field
        self.parent, self.parent_key = parent, parent_key
        self.filters = list(filters or [])
        self.fields, self.mapping, self.extra_fields = fields, mapping, list(extra_fields or [])
        self.zuora_conn_id, self.staging_root = zuora_conn_id, staging_root
        self.retry_dead_letters, self.state_conn_id = retry_dead_letters, state_conn_id

    def _hook(self) -> ZuoraHook:
        return ZuoraHook(self.zuora_conn_id, track_prefix=f"{self.dag_id}.{self.task_id}")

    def execute(self, context: Any) -> dict:
        with fail_fast():
            return self._extract(context)

    def _extract(self, context: Any) -> dict:
        started = time.monotonic()
        obj = get_object(self.zuora_object)
        directory = run_dir(staging_root(self.staging_root), self.family, context["run_id"]) / obj.name
        extra = [*self.extra_fields, *([self.parent_key] if self.parent_key else [])]
        fields = self.fields or extraction_fields(cached_mapping(self.mapping or obj.name), extra)
        base = {"family": self.family, "object": obj.name}
        if self.parent is not None or self.ids is not None:
            if self.parent is not None:
                ids, key = read_ids(self.parent.get("parts", [])), self.parent_key or "id"
                self.log.info("Reading %s of %d %s parents", obj.name, len(ids), self.parent.get("object"))
            else:
                ids, key = [str(i) for i in self.ids or []], self.id_field
            manifest = extract_ids(self._hook(), obj, key, ids, fields, self.filters, directory)
            manifest["windows"] = []
        else:
            windows = self.windows
            if windows is None and self.plan is not None:
                windows = self.plan["objects"][obj.name]["windows"]
            slices = [Window.from_dict(w) for w in windows or []]
            for w in slices:
                self.log.info("Reading %s updated in [%s, %s)", obj.name, w.lo or "the beginning", w.hi)
            manifest = extract_windows(self._hook, obj, fields, self.filters, slices, directory)
            manifest["windows"] = [w.to_dict() for w in slices]
        manifest["gone_ids"], manifest["retried"] = [], 0
        if self.retry_dead_letters:
            self._retry(obj, fields, directory, manifest)
        manifest.update(base, extract_seconds=round(time.monotonic() - started, 3), directory=str(directory))
        self.log.info(
            "Extracted %d %s records in %d pages, %d API calls, %.1fs; newest updatedDate %s",
            manifest["rows"], obj.name, manifest["pages"], manifest["api_calls"], manifest["extract_seconds"],
            manifest["max_updated"],
        )  # fmt: skip
        return manifest

    def _retry(self, obj: ZuoraObject, fields: list[str], directory: Any, manifest: dict) -> None:
        """Read every open dead letter's record again, beside this run's read. Its updatedDate does
        not count for the watermark: these records are outside the run's window."""
        letters = StateStore(self.state_conn_id).open_dead_letter_ids(self.family, obj.name)
        if not letters:
            return
        hook = self._hook()
        again = extract_ids(hook, obj, "id", letters, fields, self.filters, directory, prefix="raw-retry")
        found = set(read_ids(again["parts"]))
        manifest["gone_ids"] = [i for i in letters if i not in found]
        manifest["retried"] = len(letters)
        manifest["parts"] += again["parts"]
        manifest["rows"] += again["rows"]
        manifest["pages"] += again["pages"]
        manifest["api_calls"] += again["api_calls"]
        self.log.info("Read %d records with open dead letters again: %d found, %d gone from Zuora",
                      len(letters), len(found), len(manifest["gone_ids"]))  # fmt: skip
