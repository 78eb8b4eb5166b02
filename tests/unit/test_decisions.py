"""Per record: create, update, cancel or skip, from the family's scope and the ledger."""

from __future__ import annotations

import pytest
from zuora_etl.decisions import decide


@pytest.mark.parametrize(
    ("in_scope", "history", "expected"),
    [
        (True, None, ("create", None)),
        (True, ("loaded", "d1"), ("update", "d1")),
        (True, ("unchanged", "d2"), ("update", "d2")),
        (True, ("canceled", None), ("update", None)),  # back in scope after a cancel: sent again
        (False, ("loaded", "d1"), ("cancel", "d1")),  # a delivered Posted invoice was canceled
        (False, ("canceled", None), (None, None)),  # already canceled: nothing more
        (False, None, (None, None)),  # a Draft never delivered: skipped
    ],
)
def test_decision_table(in_scope, history, expected):
    ledger = {"a": history} if history else {}
    assert decide(["a"], [in_scope], ledger) == [expected]


def test_decides_each_record_on_its_own():
    ledger = {"b": ("loaded", "x")}
    assert decide(["a", "b", "c"], [True, False, False], ledger) == [("create", None), ("cancel", "x"), (None, None)]
