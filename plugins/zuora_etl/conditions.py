"""Record conditions in Object Query's filter syntax (`status.EQ:Posted`), evaluated on records
already read rather than sent to Zuora.

A family that delivers only some records of an object (Posted invoices, Processed payments) reads
every record by `updatedDate` and decides here, per record, whether it is in the family's scope: a
source filter would hide the later change of a delivered record (a payment returned to Error, an
invoice canceled) and leave the target stale. Zuora's filter grammar is small; a parser from a
library would be larger than this.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: light DAG files (see dag_factory)
    import pandas as pd

CONDITION_RE = re.compile(r"^(?P<field>[A-Za-z][A-Za-z0-9_]*)\.(?P<op>EQ|NE|LT|GT|LE|GE|SW|IN):(?P<value>.+)$")


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: str

    @classmethod
    def parse(cls, text: str) -> Condition:
        m = CONDITION_RE.match(text)
        if not m:
            raise ValueError(f"condition {text!r} is not of the form field.OP:value (OP: EQ NE LT GT LE GE SW IN)")
        return cls(m["field"], m["op"], m["value"])

    @property
    def values(self) -> list[str]:
        """The listed values of an IN (`[a,b]`), or the one value."""
        text = self.value.strip()
        if self.op == "IN":
            return [v.strip() for v in text.strip("[]").split(",") if v.strip()]
        return [text]

    def mask(self, column: pd.Series) -> pd.Series:
        """Which values of `column` (raw staged text, None for missing) pass; a missing value passes
        only NE."""
        import pandas as pd

        values = [None if v is None or v != v else str(v) for v in column.tolist()]
        return pd.Series([self.test(v) for v in values], index=column.index, dtype=bool)

    def test(self, value: str | None) -> bool:
        if value is None:
            return self.op == "NE"
        if self.op == "EQ":
            return value == self.value
        if self.op == "NE":
            return value != self.value
        if self.op == "IN":
            return value in self.values
        if self.op == "SW":
            return value.startswith(self.value)
        return _ordered(value, self.op, self.value)


def _ordered(value: str, op: str, bound: str) -> bool:
    """LT/GT/LE/GE: numerically when both are numbers, else as text (ISO dates order as text)."""
    try:
        left: float | str = float(value)
        right: float | str = float(bound)
    except ValueError:
        left, right = value, bound
    return {"LT": left < right, "GT": left > right, "LE": left <= right, "GE": left >= right}[op]  # type: ignore[operator]


def parse_all(texts: Sequence[str]) -> list[Condition]:
    return [Condition.parse(t) for t in texts]


def passing(frame: pd.DataFrame, conditions: Sequence[Condition], prefix: str = "") -> pd.Series:
    """Rows of `frame` that pass every condition (read from column `prefix + field`); all rows when
    there is none. A condition's column missing from the frame is an error, never a silent pass."""
    import pandas as pd

    out = pd.Series(True, index=frame.index)
    for c in conditions:
        name = prefix + c.field
        if name not in frame.columns:
            raise KeyError(f"condition {c.field}.{c.op}:{c.value} needs field {c.field}, which was not read")
        out &= c.mask(frame[name])
    return out


def fields(conditions: Sequence[Condition]) -> list[str]:
    return list(dict.fromkeys(c.field for c in conditions))
