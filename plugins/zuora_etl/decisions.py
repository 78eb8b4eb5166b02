"""What each record read means for the target, decided from the family's scope and the sync
ledger: a pure function of plain values.

| in the family's scope (`deliver_if`) | the ledger says the family | action |
| --- | --- | --- |
| yes | never delivered it | create |
| yes | delivered it, or canceled it | update (the target compares or the digest decides) |
| no | delivered it | cancel (a Posted invoice canceled, a payment returned to Error) |
| no | never delivered it, or canceled it | skip: it never concerned the target |
"""

from __future__ import annotations

from collections.abc import Sequence

from .state import CANCELED, DELIVERED

Decision = tuple[str | None, str | None]  # (action or None to skip, digest last delivered)


def decide(ids: Sequence[str], in_scope: Sequence[bool], history: dict[str, tuple[str, str | None]]) -> list[Decision]:
    out: list[Decision] = []
    for rid, scoped in zip(ids, in_scope, strict=True):
        outcome, last_digest = history.get(rid, (None, None))
        delivered = outcome in DELIVERED
        if scoped:
            action = "update" if outcome in (*DELIVERED, CANCELED) else "create"
            out.append((action, last_digest if delivered else None))
        elif delivered:
            out.append(("cancel", last_digest))
        else:
            out.append((None, None))
    return out
