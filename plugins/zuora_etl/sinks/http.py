"""HTTP sink: documents delivered to an ERP's or CRM's REST API through `ErpHook`.

What is sent comes from `include/endpoints/<object>.yaml` (delivery.py); what each record gets
(create, update, cancel) from the load step's ledger decision. Per document:

- create: 2xx delivered; 409 (the target has it already) sent again as an update;
- update: 2xx delivered; 404 (the target lost it) sent again as a create;
- cancel: 2xx or 404 (nothing to cancel) canceled;
- any other 4xx: refused, with the target's answer as the reason (a dead letter for the load step);
  it never stops the other documents.

A document whose payload is the one last delivered (same digest) is not sent again (`unchanged`).
Rate, daily budget and 429/5xx retries are the hook's; a budget spent mid-load refuses the rest
with that reason (dead letters, retried by the next run), while an unreachable target or bad
credentials fail the task (its retry resends with the same Idempotency-Keys: nothing doubles).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from airflow.sdk.exceptions import AirflowFailException

from ..delivery import Action, Call, Endpoint, batch_key, digest, endpoint_for, idempotency_key, render
from ..hooks.erp import ErpAnswer, ErpBudgetExhausted, ErpHook
from ..mapping import CARRY_PREFIX, Mapping, cached_mapping
from .base import (
    ACTION_COLUMN,
    LAST_DIGEST_COLUMN,
    PARENT_COLUMN,
    BatchOutcome,
    Children,
    Comparison,
    Sink,
    SinkConfigError,
    records,
)

log = logging.getLogger(__name__)
REASON_CHARS = 500  # of the target's answer kept in a dead letter's reason
_NO_RECONCILIATION = (
    "{conn}: reconciliation of a REST target ({obj}) is not supported yet: an API cannot be listed through "
    "the endpoints of include/endpoints. Leave this family out of the run's `families`."
)


class HttpSink(Sink):
    needs_history = True

    def __init__(self, conn_id: str, hook: ErpHook | None = None, state: Any = None) -> None:
        self.conn_id = conn_id
        self.hook = hook or ErpHook(conn_id)
        if state is not None and self.hook.budget is None:  # the day's budget, shared by every worker
            self.hook.budget = lambda n: state.take_calls(conn_id, n, self.hook.daily_call_budget)
        self.exhausted: str | None = None  # why nothing more is sent in this task (the day's budget)

    def nested(self, mapping: Mapping) -> bool:
        return endpoint_for(mapping.object) is None

    def prepare(self, mapping: Mapping) -> None:
        """Check that the object can be sent (its endpoint file, or a parent nesting it) and that
        its templates read only mapped columns: a wrong file fails at once, before any request."""
        try:
            endpoint = endpoint_for(mapping.object)
            if endpoint is not None:
                children = {name: set(cached_mapping(name).columns) for name in endpoint.children}
                endpoint.check_columns(set(mapping.columns), children)
        except ValueError as exc:
            raise SinkConfigError(str(exc)) from None

    # ---------- delivering ----------
    def upsert(
        self, mapping: Mapping, frame: pd.DataFrame, *, force: bool = False, children: Children | None = None
    ) -> BatchOutcome:
        endpoint = endpoint_for(mapping.object)
        keys = frame[mapping.key].tolist()
        if endpoint is None:  # delivered inside the parents' documents by the parent's load
            return BatchOutcome(written=keys)
        out = BatchOutcome()
        docs = self._documents(endpoint, mapping, frame, children)
        creates = []
        for doc in docs:
            if doc.action != "cancel" and not force and doc.digest == doc.last_digest:
                out.unchanged.append(doc.key)
                out.digests[doc.key] = doc.digest
            elif doc.action == "create":
                creates.append(doc)
            else:
                self._deliver(endpoint, doc, out)
        if endpoint.create.batch_size > 1:
            for start in range(0, len(creates), endpoint.create.batch_size):
                self._create_batch(endpoint, creates[start : start + endpoint.create.batch_size], out)
        else:
            for doc in creates:
                self._deliver(endpoint, doc, out)
        return out

    def _documents(self, endpoint: Endpoint, mapping: Mapping, frame: pd.DataFrame, children: Children | None):
        grouped = _group_children(endpoint, children or {}, mapping)
        docs = []
        for row in records(frame):
            action: Action = row.get(ACTION_COLUMN) or "create"
            plain = {k: v for k, v in row.items() if not k.startswith(CARRY_PREFIX)}
            key = row[mapping.key]
            kids = {name: rows.get(key, []) for name, rows in grouped.items()}
            payload = render(endpoint.payload, plain, kids)
            last = row.get(LAST_DIGEST_COLUMN)
            docs.append(_Doc(key, action, payload, row.get("updated_date"), last, plain, mapping))
        return docs

    def _deliver(self, endpoint: Endpoint, doc: _Doc, out: BatchOutcome, tried: tuple[str, ...] = ()) -> None:
        """One document by its action; a create the target already has goes again as an update, an
        update the target lost as a create (each at most once)."""
        if self.exhausted:
            out.rejected.append((doc.key, self.exhausted))
            return
        if doc.action == "cancel" and endpoint.cancel is None:  # the target has no cancel: send the new state
            doc = doc.as_action("update")
        call: Call = getattr(endpoint, doc.action)
        body = doc.payload
        if doc.action == "cancel":
            body = render(call.payload, doc.row) if call.payload is not None else None
        key = idempotency_key(doc.mapping.object, doc.key, doc.updated, doc.action, doc.digest)
        path = call.endpoint if doc.action == "create" else call.path(doc.key)
        answer = self._send(call.method, path, body, key, doc, out)
        if answer is None:
            return
        if 200 <= answer.status < 300 or (doc.action == "cancel" and answer.status == 404):
            if doc.action == "cancel":
                out.canceled.append(doc.key)
            else:
                out.written.append(doc.key)
                out.digests[doc.key] = doc.digest
        elif doc.action == "create" and answer.status == 409 and "update" not in tried:
            self._deliver(endpoint, doc.as_action("update"), out, (*tried, "create"))
        elif doc.action == "update" and answer.status == 404 and "create" not in tried:
            self._deliver(endpoint, doc.as_action("create"), out, (*tried, "update"))
        else:
            out.rejected.append((doc.key, _reason(answer)))

    def _send(self, method: str, path: str, body: Any, key: str, doc: _Doc, out: BatchOutcome) -> ErpAnswer | None:
        """The target's answer, or None when the day's budget is spent (the document is refused)."""
        try:
            return self.hook.send(method, path, json=body, idempotency_key=key)
        except ErpBudgetExhausted as exc:
            self.exhausted = str(exc)
            out.rejected.append((doc.key, self.exhausted))
            return None

    def _create_batch(self, endpoint: Endpoint, docs: list[_Doc], out: BatchOutcome) -> None:
        """Documents created in one request; the answer's results say each one's fate. A batch
        refused as a whole (a 4xx) is sent again one by one, so one bad document costs only itself."""
        if not docs:
            return
        if self.exhausted:
            out.rejected += [(d.key, self.exhausted) for d in docs]
            return
        call = endpoint.create
        keys = [idempotency_key(d.mapping.object, d.key, d.updated, "create", d.digest) for d in docs]
        body = {call.batch_key: [d.payload for d in docs]}
        try:
            answer = self.hook.send(call.method, call.batch_endpoint, json=body, idempotency_key=batch_key(keys))
        except ErpBudgetExhausted as exc:
            self.exhausted = str(exc)
            out.rejected += [(d.key, self.exhausted) for d in docs]
            return
        results = answer.body.get(call.results_key) if isinstance(answer.body, dict) else None
        if not (200 <= answer.status < 300 and isinstance(results, list) and len(results) == len(docs)):
            log.warning("batch of %d %s answered HTTP %s; sending them one by one", len(docs), endpoint.object,
                        answer.status)  # fmt: skip
            for doc in docs:
                self._deliver(endpoint, doc, out)
            return
        for doc, result in zip(docs, results, strict=True):
            status = int(result.get("status", 500)) if isinstance(result, dict) else 500
            if 200 <= status < 300:
                out.written.append(doc.key)
                out.digests[doc.key] = doc.digest
            elif status == 409:
                self._deliver(endpoint, doc.as_action("update"), out, ("create",))
            else:
                out.rejected.append((doc.key, _reason(ErpAnswer(status, result, answer.request_id, False))))

    # ---------- comparing (dry run) ----------
    def compare(
        self, mapping: Mapping, frame: pd.DataFrame, *, force: bool = False, children: Children | None = None
    ) -> Comparison:
        """What delivering would send, from the ledger's last digests: new documents, changed
        ones (a sample of their payloads) and unchanged ones; nothing is sent."""
        endpoint = endpoint_for(mapping.object)
        out = Comparison()
        if endpoint is None:
            out.unchanged = frame[mapping.key].tolist()
            return out
        for doc in self._documents(endpoint, mapping, frame, children):
            if doc.action == "create":
                out.inserted.append(doc.key)
            elif doc.action == "cancel" or force or doc.digest != doc.last_digest:
                out.updated.append(doc.key)
                out.differences.append({"id": doc.key, "changes": {doc.action: [None, _short(doc.payload)]}})
            else:
                out.unchanged.append(doc.key)
        return out

    # ---------- what the target holds ----------
    def read_keys(self, mapping: Mapping) -> dict[str, object]:
        raise AirflowFailException(_NO_RECONCILIATION.format(conn=self.conn_id, obj=mapping.object))

    def iter_rows(self, mapping: Mapping, columns: Sequence[str], **_: Any) -> Iterator[list[dict]]:
        raise AirflowFailException(_NO_RECONCILIATION.format(conn=self.conn_id, obj=mapping.object))

    def rows_by_key(self, mapping: Mapping, columns: Sequence[str], keys: Sequence[str]) -> dict[str, dict]:
        raise AirflowFailException(_NO_RECONCILIATION.format(conn=self.conn_id, obj=mapping.object))

    def set_deleted(self, mapping: Mapping, marks: dict[str, datetime | None]) -> int:
        raise AirflowFailException(_NO_RECONCILIATION.format(conn=self.conn_id, obj=mapping.object))

    def updated_dates(self, mapping: Mapping, keys: list[str]) -> dict[str, object]:
        """None known: an API is not asked per document after a crash. The dead worker's pending
        documents are sent again, with the same Idempotency-Keys, so the target answers each once."""
        return {}

    def claim(self, mapping: Mapping, family: str, scope: str) -> None:
        """Nothing to claim: an API keys its documents by the Zuora id (external_id), so two families
        can only ever update one document, never mix record sets in one table."""


class _Doc:
    def __init__(self, key, action, payload, updated, last_digest, row, mapping) -> None:
        self.key, self.action, self.payload, self.updated = key, action, payload, updated
        self.last_digest, self.row, self.mapping = last_digest, row, mapping
        self.digest = digest(payload)

    def as_action(self, action: Action) -> _Doc:
        return _Doc(self.key, action, self.payload, self.updated, self.last_digest, self.row, self.mapping)


def _group_children(endpoint: Endpoint, children: Children, mapping: Mapping) -> dict[str, dict[str, list[dict]]]:
    """Each nested object's rows by the id of the parent they name (`PARENT_COLUMN`), once
    each, in key order so that the same document always renders the same."""
    grouped: dict[str, dict[str, list[dict]]] = {}
    for name in endpoint.children:
        frame = children.get(name)
        if frame is None or frame.empty:
            grouped[name] = {}
            continue
        if PARENT_COLUMN not in frame.columns:
            raise ValueError(f"{name}: rows carry no parent id to nest them in {mapping.object}")
        # A line read twice (through its parent and again for its own dead letter) counts once: its newest.
        key = cached_mapping(name).key
        frame = frame.sort_values("updated_date", kind="stable").drop_duplicates(key, keep="last")
        rows: dict[str, list[dict]] = defaultdict(list)
        for row in records(frame.sort_values(key, kind="stable")):
            rows[row[PARENT_COLUMN]].append({k: v for k, v in row.items() if not k.startswith(CARRY_PREFIX)})
        grouped[name] = dict(rows)
    return grouped


def _reason(answer: ErpAnswer) -> str:
    body = answer.body
    text = body.get("error") or body.get("message") if isinstance(body, dict) else None
    detail = text if isinstance(text, str) else str(body)
    return f"HTTP {answer.status}: {detail}"[:REASON_CHARS]


def _short(payload: Any) -> str:
    text = json.dumps(payload, default=str)
    return text if len(text) <= 300 else text[:297] + "..."
