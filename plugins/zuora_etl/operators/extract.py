"""ZuoraObjectQueryOperator: one Zuora object, over a time window or by ids, into staging."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, ObjectStoragePath

from ..catalog import ZuoraObject, get_object
from ..conditions import parse_all
from ..errors import fail_fast
from ..manifests import ExtractResult, RunPlan, TransformResult, WindowDict, merge, one_manifest
from ..mapping import cached_mapping
from ..settings import STATE_CONN_ID, ZUORA_CONN_ID
from ..windows import Window

if TYPE_CHECKING:
    from ..hooks.zuora import ZuoraHook

# The pipeline's modules (pandas, pyarrow, the HTTP provider) are imported in `execute`, not here:
# the DAG file that builds this operator stays light to parse (see dag_factory).


class ZuoraObjectQueryOperator(BaseOperator):
    """Extract one Zuora object with Object Query and stage it as Parquet parts.

    What it reads, all of which may combine:

    - time windows (`windows`, a group of slices: the sync DAGs map this task over the plan's
      groups; `window`, one slice; or every window the plan gives the object), with
      `updatedDate.GE:lo` and `updatedDate.LT:hi`;
    - the records whose `parent_key` is the id of a record its parent step read (`parent`: the
      parent's extract or mark result: the items of the invoices just read, documents just flagged);
    - the ids the plan lists for the object (`id_parts`: a replay).

    The family's `filters` apply to every read. Slices are read by threads sharing the task's hook
    (at most the connection's `max_in_flight` calls at once). When the plan marks the object `bulk`
    (a first load or long backfill, see planning and bulk.py), the windows, and the children of the
    parents read that way, are read by Data Query export instead of Object Query pages.

    Returns an `ExtractResult` (parts, counts, newest updatedDate, API calls); the records stay in
    staging, under the plan's `staging_dir`. With `transform`, the task also maps what it read
    (the object's mapping; rows that fail it are quarantined with their reasons) and returns a
    `TransformResult`: each mapped extract transforms its own slices, side by side, and the load
    step checks the object as a whole before it writes anything.

    :param family: family name (staging folder, dead letters, logs)
    :param zuora_object: catalog name of the object, e.g. ``invoice_items``
    :param plan: the run's plan (an XComArg of the `plan` task): staging directory, windows, ids
    :param window: one time slice ``{"lo": iso | None, "hi": iso}``
    :param windows: time slices read in threads (mapped: one group each); neither: the plan's windows
    :param parent: the parent step's result (or a list of them, one per mapped slice)
    :param parent_key: the field of this object naming its parent, e.g. ``invoiceId``
    :param parent_conditions: the parent's scope (``status.EQ:Posted``): only the children of
        parents in it are read (the items of Posted invoices, not of Drafts)
    :param filters: Object Query filters, e.g. ``["status.EQ:Posted"]``
    :param fields: fields to request; default: what the object's mapping reads plus ``extra_fields``
    :param subdir: staging sub-folder of the object (``readback`` for the mark step's read-back)
    :param retry_dead_letters: also read again, by id, every record of this object that has an open
        dead letter in the family; ids Zuora no longer returns under the filters become `gone_ids`
    :param transform: apply the mapping to what was read (`parts` then names the mapped parts,
        `raw_parts` the records as Zuora gave them)
    :param carry: with `transform`, raw fields kept beside the mapped columns (a parent's id, the
        fields the family's scope reads)
    """

    template_fields: Sequence[str] = ("plan", "window", "parent", "filters", "staging_root")
    ui_color = "#e8f4ea"

    def __init__(
        self,
        *,
        family: str,
        zuora_object: str,
        plan: Any = None,
        window: WindowDict | None = None,
        windows: list[WindowDict] | None = None,
        parent: Any = None,
        parent_key: str | None = None,
        parent_conditions: Sequence[str] = (),
        filters: list[str] | None = None,
        fields: list[str] | None = None,
        mapping: str | None = None,
        extra_fields: list[str] | None = None,
        subdir: str | None = None,
        zuora_conn_id: str = ZUORA_CONN_ID,
        staging_root: str | None = None,
        retry_dead_letters: bool = False,
        state_conn_id: str = STATE_CONN_ID,
        transform: bool = False,
        carry: Sequence[str] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        get_object(zuora_object)
        self.family, self.zuora_object, self.plan = family, zuora_object, plan
        self.window, self.windows = window, windows
        self.parent, self.parent_key, self.parent_conditions = parent, parent_key, list(parent_conditions)
        self.filters = list(filters or [])
        self.fields, self.mapping, self.extra_fields = fields, mapping, list(extra_fields or [])
        self.subdir, self.zuora_conn_id, self.staging_root = subdir, zuora_conn_id, staging_root
        self.retry_dead_letters, self.state_conn_id = retry_dead_letters, state_conn_id
        self.transform, self.carry = transform, tuple(carry)

    def _hook(self) -> ZuoraHook:
        from ..hooks.zuora import ZuoraHook

        return ZuoraHook(self.zuora_conn_id, track_prefix=f"{self.dag_id}.{self.task_id}")

    def execute(self, context: Any) -> ExtractResult | TransformResult:
        with fail_fast():
            return self._extract(context)

    def staging_dir(self, context: Any, parent: dict | None) -> str:
        """The run's staging directory: the plan's, else the parent's, else derived from the run."""
        from ..staging import run_dir, staging_root

        for source in (self.plan, parent):
            if source and source.get("staging_dir"):
                return str(source["staging_dir"])
        return str(run_dir(staging_root(self.staging_root), self.family, context["run_id"]))

    def _extract(self, context: Any) -> ExtractResult | TransformResult:
        from ..bulk import export_windows
        from ..pipeline import extract_ids, extract_windows, extraction_fields, read_ids, transform

        started = time.monotonic()
        obj = get_object(self.zuora_object)
        parent = one_manifest(self.parent)  # the parent's results, read once (a mapped parent: one per slice)
        run_staging = self.staging_dir(context, parent)
        directory = ObjectStoragePath(run_staging) / obj.name
        if self.subdir:
            directory = directory / self.subdir
        extra = [*self.extra_fields, *([self.parent_key] if self.parent_key else [])]
        fields = self.fields or extraction_fields(cached_mapping(self.mapping or obj.name), extra)
        map_index = getattr(context.get("ti"), "map_index", -1)
        map_index = map_index if isinstance(map_index, int) else -1
        tag = f"m{map_index:03d}-" if map_index >= 0 else ""
        reads: list[dict] = []
        slices = self._windows()
        bulk = bool(self._plan_object(obj).get("bulk")) and not self.subdir  # a read-back is never exported
        for w in slices:
            self.log.info("Reading %s updated in [%s, %s)%s", obj.name, w.lo or "the beginning", w.hi,
                          " by Data Query export" if bulk else "")  # fmt: skip
        if slices and bulk:
            reads.append(export_windows(self._hook, obj, fields, self.filters, slices, directory, f"raw-{tag}bulk"))
        elif slices:
            reads.append(extract_windows(self._hook, obj, fields, self.filters, slices, directory, f"raw-{tag}s"))
        if parent is not None and bulk and parent.get("bulk"):
            reads.append(self._children_by_export(obj, parent, fields, directory, tag))
        elif parent is not None:
            ids = read_ids(raw_parts(parent), conditions=parse_all(self.parent_conditions))
            self.log.info("Reading %s of %d %s records%s", obj.name, len(ids), parent.get("object"),
                          f" ({' and '.join(self.parent_conditions)})" if self.parent_conditions else "")  # fmt: skip
            key = self.parent_key or "id"
            reads.append(extract_ids(self._hook, obj, key, ids, fields, self.filters, directory, f"raw-{tag}parent"))
        wanted = self._plan_ids(obj)
        if wanted:
            self.log.info("Reading %d %s records by id", len(wanted), obj.name)
            reads.append(extract_ids(self._hook, obj, "id", wanted, fields, self.filters, directory, "raw-ids"))
        manifest = merge(reads)
        manifest.update(windows=[w.to_dict() for w in slices], gone_ids=[], retried=0)
        if wanted:
            found = set(read_ids(reads[-1]["parts"]))
            manifest["gone_ids"] = [i for i in wanted if i not in found]
            if manifest["gone_ids"]:
                self.log.warning("%d of the %d %s asked for are not in Zuora under the family's filters: %s",
                                 len(manifest["gone_ids"]), len(wanted), obj.name,
                                 ", ".join(manifest["gone_ids"][:20]))  # fmt: skip
        if self.retry_dead_letters and map_index <= 0:
            self._retry(obj, fields, directory, manifest)
        manifest.update(family=self.family, object=obj.name, staging_dir=run_staging, directory=str(directory),
                        filters=self.filters, extract_seconds=round(time.monotonic() - started, 3))  # fmt: skip
        self.log.info(
            "Extracted %d %s records in %d pages, %d API calls, %.1fs; newest updatedDate %s",
            manifest["rows"], obj.name, manifest["pages"], manifest["api_calls"], manifest["extract_seconds"],
            manifest["max_updated"],
        )  # fmt: skip
        if not self.transform:
            return manifest  # type: ignore[return-value]
        result = transform(cached_mapping(self.mapping or obj.name), manifest, directory, self.carry, tag)  # type: ignore[arg-type]
        self.log.info("%s: %d records mapped, %d quarantined (%.1fs)", obj.name, result["rows_out"],
                      result["quarantined"], result["transform_seconds"])  # fmt: skip
        return result

    def _windows(self) -> list[Window]:
        if self.window is not None:
            return [Window.from_dict(self.window)]
        windows = self.windows
        if windows is None and self.plan is not None:
            windows = self.plan["objects"].get(self.zuora_object, {}).get("windows", [])
        return [Window.from_dict(w) for w in windows or []]

    def _plan_object(self, obj: ZuoraObject) -> dict:
        plan: RunPlan | None = self.plan
        return dict((plan or {}).get("objects", {}).get(obj.name, {})) if plan else {}

    def _plan_ids(self, obj: ZuoraObject) -> list[str]:
        from ..pipeline import read_ids

        parts = self._plan_object(obj).get("id_parts", [])
        return list(dict.fromkeys(read_ids(parts))) if parts else []

    def _children_by_export(self, obj: ZuoraObject, parent: dict, fields: list[str], directory: Any, tag: str) -> dict:
        """The children of the parents an export read, by export too: per parent window, the
        records whose `parent_key` names a parent in that window passing the parent's filters and
        conditions. Parents read otherwise (dead letters retried by id) bring theirs by id."""
        from ..bulk import export_windows
        from ..pipeline import extract_ids, read_ids

        scope = (get_object(parent["object"]), self.parent_key or "id",
                 [*parent.get("filters", []), *self.parent_conditions])  # fmt: skip
        windows = [Window.from_dict(w) for w in parent.get("windows", [])]
        self.log.info("Reading %s of the %s exported in %d windows, by Data Query export", obj.name,
                      parent["object"], len(windows))  # fmt: skip
        read = export_windows(self._hook, obj, fields, self.filters, windows, directory, f"raw-{tag}bulk", scope)
        exported = set(parent["bulk"]["parts"])
        others = [p for p in raw_parts(parent) if p not in exported]
        ids = read_ids(others, conditions=parse_all(self.parent_conditions)) if others else []
        if not ids:
            return read
        self.log.info("Reading %s of %d %s read by id", obj.name, len(ids), parent["object"])
        by_id = extract_ids(self._hook, obj, scope[1], ids, fields, self.filters, directory, f"raw-{tag}parent")
        return merge([read, by_id])

    def _retry(self, obj: ZuoraObject, fields: list[str], directory: Any, manifest: dict) -> None:
        """Read every open dead letter's record again, beside this run's read. Its updatedDate does
        not count for the watermark: these records are outside the run's window."""
        from ..pipeline import extract_ids, read_ids
        from ..state import StateStore

        letters = StateStore(self.state_conn_id).open_dead_letter_ids(self.family, obj.name)
        if not letters:
            return
        again = extract_ids(self._hook, obj, "id", letters, fields, self.filters, directory, prefix="raw-retry")
        found = set(read_ids(again["parts"]))
        manifest["gone_ids"] += [i for i in letters if i not in found]
        manifest["retried"] = len(letters)
        for key in ("parts", "rows", "pages", "api_calls"):
            manifest[key] += again[key]
        self.log.info("Read %d records with open dead letters again: %d found, %d gone from Zuora",
                      len(letters), len(found), len(letters) - len(found))  # fmt: skip


def raw_parts(result: dict) -> list[str]:
    """A step's parts as Zuora gave them: a transformed extract's `raw_parts`, else its `parts`
    (an extract that did not transform, or the mark step's ids)."""
    return list(result.get("raw_parts", result.get("parts", [])))
