"""Field mappings (include/mappings/*.yaml): validated models, applied to staged DataFrames.

A mapping turns one Zuora object's staged records (every field as text) into one target table's
rows. Rows that fail (a required value missing, a value that is not of its type or not allowed)
are quarantined with the reason; the others go on. Nothing is dropped without a trace.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from . import INCLUDE_DIR
from .catalog import get_object

MAPPINGS_DIR = INCLUDE_DIR / "mappings"
ColumnType = Literal["string", "integer", "number", "decimal", "boolean", "date", "datetime"]
_TRUE, _FALSE = {"true", "1", "yes"}, {"false", "0", "no"}


class Column(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str | None = None  # Zuora field (case-insensitive)
    const: Any = None  # or a constant
    type: ColumnType = "string"
    required: bool = False
    values: dict[str, Any] | None = None  # value map applied before conversion
    allowed: list[Any] | None = None  # after mapping, any other value is quarantined
    max_length: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _one_origin(self) -> Column:
        if (self.source is None) == (self.const is None):
            raise ValueError("a column takes exactly one of 'source' or 'const'")
        return self


class Mapping(BaseModel):
    model_config = ConfigDict(extra="forbid")
    object: str
    table: str
    key: str = "id"
    columns: dict[str, Column]

    @model_validator(mode="after")
    def _check(self) -> Mapping:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", self.table):
            raise ValueError(f"table name {self.table!r} is not a plain SQL identifier")
        spec = get_object(self.object)
        fields = {f.lower(): f for f in spec.fields}
        for name, col in self.columns.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"column name {name!r} is not a plain SQL identifier")
            if col.source is not None:
                if col.source.lower() not in fields:
                    raise ValueError(f"column {name}: {col.source} is not a field of {self.object} in the catalog")
                col.source = fields[col.source.lower()]
        key = self.columns.get(self.key)
        if key is None or key.source != "id":
            raise ValueError(f"key column {self.key!r} must map Zuora's id")
        updated = self.columns.get("updated_date")
        if updated is None or updated.source != "updatedDate" or updated.type != "datetime":
            raise ValueError("column updated_date must map updatedDate as a datetime (the sinks keep the newer one)")
        key.required = updated.required = True
        return self

    def source_fields(self) -> list[str]:
        return sorted({c.source for c in self.columns.values() if c.source})


def load_mapping(name: str, directory: Path = MAPPINGS_DIR) -> Mapping:
    path = directory / f"{name}.yaml"
    try:
        return Mapping.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ValueError(f"no mapping {path}") from None
    except Exception as exc:
        raise ValueError(f"mapping {path.name}: {exc}") from exc


@cache
def cached_mapping(name: str, directory: Path = MAPPINGS_DIR) -> Mapping:
    return load_mapping(name, directory)


def _convert(raw: pd.Series, col: Column) -> tuple[pd.Series, pd.Series]:
    """(converted values, mask of values that failed conversion)."""
    present = raw.notna()
    if col.type == "string":
        return raw, pd.Series(False, index=raw.index)
    if col.type in ("integer", "number", "decimal"):
        out = pd.to_numeric(raw, errors="coerce")
        bad = present & out.isna()
        if col.type == "integer":
            bad |= out.notna() & (out % 1 != 0)
            out = out.astype("Int64", errors="ignore") if not bad.any() else out
        return out, bad
    if col.type == "boolean":
        low = raw.astype("string").str.lower()
        out = pd.Series(pd.NA, index=raw.index, dtype="boolean")
        out[low.isin(_TRUE).fillna(False)] = True
        out[low.isin(_FALSE).fillna(False)] = False
        return out, present & out.isna()
    if col.type == "date":
        parsed = pd.to_datetime(raw, format="%Y-%m-%d", errors="coerce")
        return parsed.dt.date.where(parsed.notna(), None), present & parsed.isna()
    # datetime: Zuora's offsets vary (tenant zone, daylight saving); the target gets naive UTC.
    parsed = pd.to_datetime(raw, format="ISO8601", utc=True, errors="coerce")
    return parsed.dt.tz_localize(None), present & parsed.isna()


def apply_mapping(mapping: Mapping, raw: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows for the target, quarantined rows with `record_id`, `reason`, `payload`)."""
    reasons = pd.Series(None, index=raw.index, dtype="object")
    out: dict[str, pd.Series] = {}

    def fail(mask: pd.Series, reason: str) -> None:
        """Every failing column is named: a record quarantined for one reason may have others."""
        mask = mask.fillna(False).astype(bool)
        reasons[mask] = [reason if pd.isna(r) else f"{r}; {reason}" for r in reasons[mask]]

    for name, col in mapping.columns.items():
        if col.const is not None:
            out[name] = pd.Series([col.const] * len(raw), index=raw.index, dtype="object")
            continue
        series = raw[col.source] if col.source in raw.columns else pd.Series(None, index=raw.index, dtype="object")
        if col.values:
            series = series.map(lambda v, m=col.values: m.get(v, v) if v is not None and v == v else v)
        if col.required:
            fail(series.isna(), f"{col.source}: required value missing")
        if col.type != "string" and col.values:
            series = series.map(lambda v: None if v is None or v != v else str(v))
        converted, bad = _convert(series, col)
        if bad.any():
            mask = bad.fillna(False).astype(bool)
            for idx, value in series[mask].items():
                reason = f"{col.source}: {value!r} is not a valid {col.type}"
                reasons[idx] = reason if pd.isna(reasons[idx]) else f"{reasons[idx]}; {reason}"
        if col.allowed is not None:
            fail(converted.notna() & ~converted.isin(col.allowed), f"{col.source}: value not allowed")
        if col.max_length is not None:
            fail(converted.astype("string").str.len() > col.max_length, f"{col.source}: longer than {col.max_length}")
        out[name] = converted
    frame = pd.DataFrame(out, index=raw.index)
    bad_rows = reasons.notna()
    quarantine = pd.DataFrame(
        {
            "record_id": raw["id"][bad_rows] if "id" in raw.columns else None,
            "reason": reasons[bad_rows],
            "payload": [
                json.dumps({k: v for k, v in row.items() if v is not None and v == v}, ensure_ascii=False)
                for row in raw[bad_rows].to_dict("records")
            ],
        }
    )
    good = frame[~bad_rows]
    # One row per key, the newest: a record that moved during paging arrives twice.
    good = good.sort_values("updated_date", kind="stable").drop_duplicates(mapping.key, keep="last")
    return good.reset_index(drop=True), quarantine.reset_index(drop=True)
