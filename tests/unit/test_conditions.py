"""Scope conditions evaluated on records read, in Object Query's filter syntax."""

from __future__ import annotations

import pandas as pd
import pytest
from zuora_etl.conditions import Condition, parse_all, passing

FRAME = pd.DataFrame(
    {
        "status": ["Posted", "Draft", None, "Canceled"],
        "amount": ["10.5", "-3", "100", None],
        "invoiceDate": ["2026-01-31", "2026-02-01", "2025-12-31", None],
    }
)


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("status.EQ:Posted", [True, False, False, False]),
        ("status.NE:Posted", [False, True, True, True]),
        ("status.IN:[Posted,Canceled]", [True, False, False, True]),
        ("status.SW:Dr", [False, True, False, False]),
        ("amount.GE:10.5", [True, False, True, False]),
        ("amount.LT:0", [False, True, False, False]),
        ("invoiceDate.GE:2026-01-01", [True, True, False, False]),
    ],
)
def test_each_operator(condition, expected):
    assert passing(FRAME, [Condition.parse(condition)]).tolist() == expected


def test_all_conditions_must_pass_and_none_passes_everything():
    assert passing(FRAME, parse_all(["status.NE:Draft", "amount.GT:50"])).tolist() == [False, False, True, False]
    assert passing(FRAME, []).tolist() == [True] * 4


def test_carried_columns_are_read_with_their_prefix():
    carried = FRAME.rename(columns=lambda c: f"__{c}")
    assert passing(carried, parse_all(["status.EQ:Posted"]), "__").tolist() == [True, False, False, False]


def test_a_field_that_was_not_read_is_an_error_not_a_pass():
    with pytest.raises(KeyError, match="balance"):
        passing(FRAME, parse_all(["balance.GT:0"]))


@pytest.mark.parametrize("text", ["status", "status.EQ", "status.XX:1", "1status.EQ:x"])
def test_malformed_conditions_are_refused(text):
    with pytest.raises(ValueError, match=r"field\.OP:value"):
        Condition.parse(text)
