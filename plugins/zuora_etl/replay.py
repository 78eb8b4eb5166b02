"""Replay: re-sync exactly the records asked for, through the family's own chain.

What is asked for (Zuora ids, numbers such as invoice numbers, or every open dead letter of an
object) is resolved here to Zuora ids and staged; the family's chains then read exactly those
records (batched `id.IN:[...]` filters, their parts with them: an invoice's items), load them with
`force` (Zuora changes some fields, such as balances, without a new updatedDate) and flag ERP
documents as the sync would. No watermark moves.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from airflow.sdk import ObjectStoragePath

from .catalog import PART_OF, ZUORA_ID_RE, get_object
from .families import Family, get_family
from .manifests import ObjectPlan, RunPlan
from .state import StateStore

if TYPE_CHECKING:  # the hook and the pipeline are imported where used: light DAG files (see dag_factory)
    from .hooks.zuora import ZuoraHook

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayRequest:
    family: str
    object: str
    values: tuple[str, ...]  # ids and numbers as given
    dead_letters: bool = False
    dry_run: bool = False


@dataclass
class Resolved:
    """The ids a replay reads, of which object, and what could not be resolved."""

    object: str  # the object read by id (an item's parent when the family reads items by parent)
    ids: list[str]
    not_found: list[str]  # numbers (or items) Zuora does not know
    from_dead_letters: int = 0


def parse_request(params: dict) -> ReplayRequest:
    """The replay's params, checked: raises ValueError naming the fix."""
    family = get_family(str(params.get("family") or ""))
    name = str(params.get("object") or "")
    names = [o.name for o in family.objects]
    if name not in names:
        raise ValueError(f"{name!r} is not an object of family {family.family}; choose one of {', '.join(names)}")
    raw = params.get("ids") or []
    if isinstance(raw, str):
        raw = re.split(r"[\s,;]+", raw)
    values = tuple(dict.fromkeys(str(v).strip() for v in raw if str(v).strip()))
    if not values and not params.get("dead_letters"):
        raise ValueError("nothing to replay: give ids or numbers, or set dead_letters")
    return ReplayRequest(family.family, name, values, bool(params.get("dead_letters")), bool(params.get("dry_run")))


def split_values(values: Sequence[str]) -> tuple[list[str], list[str]]:
    """(Zuora ids, numbers) among what was given."""
    ids = [v for v in values if ZUORA_ID_RE.match(v)]
    return ids, [v for v in values if not ZUORA_ID_RE.match(v)]


def replay_parents(family: Family) -> dict[str, tuple[str, str]]:
    """For each object of the family, the object it is read with in a replay and the field naming
    it: the family's own parent link (items of Posted invoices), else Zuora's composition (an
    account's contacts) when the whole is in the family."""
    names = [o.name for o in family.objects]
    links: dict[str, tuple[str, str]] = {}
    for o in family.objects:
        if o.parent:
            links[o.name] = (o.parent.object, o.parent.key)
        elif o.name in PART_OF and PART_OF[o.name][0] in names[: names.index(o.name)]:
            links[o.name] = PART_OF[o.name]
    return links


def _lookup(hook: ZuoraHook, endpoint: str, field: str, values: list[str], want: str) -> dict[str, str]:
    """`field` value -> `want` value of the records whose `field` is one of `values`."""
    from .pipeline import IN_CHUNK

    found: dict[str, str] = {}
    for start in range(0, len(values), IN_CHUNK):
        chunk = values[start : start + IN_CHUNK]
        params = [("fields[]", ",".join(sorted({"id", field, want}))), ("filter[]", f"{field}.IN:[{','.join(chunk)}]")]
        for page in hook.paginate(endpoint, params, require=("id",)):
            for rec in page:
                if rec.get(field) is not None and rec.get(want):
                    found[str(rec[field])] = str(rec[want])
    return found


def resolve(request: ReplayRequest, hook: ZuoraHook, state: StateStore) -> Resolved:
    """Zuora ids of what the request names: numbers looked up, open dead letters added, and items
    of a family that reads items by parent replaced by their parents (the parent brings them)."""
    family = get_family(request.family)
    obj = get_object(request.object)
    ids, numbers = split_values(request.values)
    not_found: list[str] = []
    if numbers:
        if not obj.number_field:
            raise ValueError(f"{obj.name} have no number to look up; give their Zuora ids (32 hex characters): "
                             f"{', '.join(numbers[:5])}")  # fmt: skip
        by_number = _lookup(hook, obj.endpoint, obj.number_field, numbers, "id")
        ids += [by_number[n] for n in numbers if n in by_number]
        not_found += [n for n in numbers if n not in by_number]
    letters = state.open_dead_letter_ids(family.family, obj.name) if request.dead_letters else []
    ids = list(dict.fromkeys([*ids, *letters]))
    target = obj.name
    own = family.get(obj.name).parent
    if own and ids:
        parents = _lookup(hook, obj.endpoint, "id", ids, own.key)
        not_found += [i for i in ids if i not in parents]
        log.info("%s are read with their %s: replaying %d of those instead", obj.name, own.object,
                 len(set(parents.values())))  # fmt: skip
        target, ids = own.object, list(dict.fromkeys(parents.values()))
    if not_found:
        log.warning("Not found in Zuora: %s", ", ".join(not_found[:20]))
    return Resolved(target, ids, not_found, len(letters))


def replay_plan(request: ReplayRequest, resolved: Resolved, run_id: str, staging_dir: ObjectStoragePath) -> RunPlan:
    """The run's plan: the resolved ids staged for their object, every other object of the family
    read only with its parent (or not at all)."""
    from .pipeline import stage_ids

    family = get_family(request.family)
    parents = replay_parents(family)
    objects: dict[str, ObjectPlan] = {}
    for o in family.objects:
        parts = stage_ids(staging_dir / o.name, "replay-ids", resolved.ids) if o.name == resolved.object else []
        objects[o.name] = {"windows": [], "watermark": None, "by_parent": parents.get(o.name, (None,))[0],
                           "id_parts": parts}  # fmt: skip
    return {"family": family.family, "mode": "dry_run" if request.dry_run else "replay", "run_id": run_id,
            "staging_dir": str(staging_dir), "objects": objects, "force": True,
            "requested": len(resolved.ids)}  # fmt: skip
