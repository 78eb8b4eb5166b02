"""Field mappings (include/mappings/*.yaml): validated models, applied to staged DataFrames.

A mapping turns one Zuora object's staged records (every field as text) into one target table's
rows. Rows that fail (a required value missing, a value that is not of its type or not allowed)
are quarantined with the reason; the others go on. Nothing is dropped without a trace.
"""

from __future__ import annotations

import difflib
import json
import re
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .catalog import HOLDS, ZuoraObject, get_object, is_custom
from .settings import include_dir

if TYPE_CHECKING:  # imported where used: DAG files read the models only (see dag_factory)
    import pandas as pd

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
        problems = []
        for name, col in self.columns.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                problems.append(f"column name {name!r} is not a plain SQL identifier")
            elif col.source is not None:
                problem = _source_problem(spec, name, col)
                if problem:
                    problems.append(problem)
                elif not is_custom(col.source):
                    col.source = spec.field(col.source)
        if problems:
            raise ValueError("; ".join(problems))
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


def _source_problem(spec: ZuoraObject, name: str, col: Column) -> str | None:
    """Why a column's source cannot be read from Zuora as declared, with the fix; None if it can.
    Custom fields (`*__c`) are the tenant's own and stay free: the preflight check asks the tenant."""
    source = col.source or ""
    if is_custom(source):
        return None
    field = spec.field(source)
    if field is not None:
        kind = spec.fields[field]
        if kind in HOLDS[col.type]:
            return None
        fix = "datetime" if kind == "datetime" else "decimal" if kind == "number" else kind
        return (
            f"column {name}: {field} is a {kind} in Zuora ({spec.model}), which a {col.type} column cannot hold; "
            f"fix: type: {fix}"
        )
    relation = spec.relation(source)
    if relation is not None:
        id_field = spec.field(f"{relation}Id")
        fix = f"source: {id_field}" if id_field else "read it from its own object"
        return (
            f"column {name}: {relation} is a relation of {spec.name} ({spec.relations[relation]}) for expand[], "
            f"not a field; fix: {fix}"
        )
    close = difflib.get_close_matches(source, list(spec.fields), n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}?" if close else "see include/zuora_catalog.json for its fields"
    return f"column {name}: {source} is not a field of {spec.name} ({spec.model}); {hint}"


def mappings_dir() -> Path:
    return include_dir() / "mappings"


def load_mapping(name: str, directory: Path | None = None) -> Mapping:
    path = (directory or mappings_dir()) / f"{name}.yaml"
    try:
        return Mapping.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ValueError(f"no mapping {path}") from None
    except ValidationError as exc:
        problems = "; ".join(
            str(e["msg"]).removeprefix("Value error, ") + (f" (at {'.'.join(map(str, e['loc']))})" if e["loc"] else "")
            for e in exc.errors()
        )
        raise ValueError(f"mapping {path}: {problems}") from None
    except Exception as exc:
        raise ValueError(f"mapping {path}: {exc}") from exc


def cached_mapping(name: str, directory: Path | None = None) -> Mapping:
    """A mapping parsed once per process and directory (resolved now, so a changed
    ZUORA_ETL_INCLUDE_DIR reads the other directory)."""
    return _cached_mapping(name, directory or mappings_dir())


@cache
def _cached_mapping(name: str, directory: Path) -> Mapping:
    return load_mapping(name, directory)


def _convert(raw: pd.Series, col: Column) -> tuple[pd.Series, pd.Series]:
    """(converted values, mask of values that failed conversion)."""
    import pandas as pd

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


CARRY_PREFIX = "__"  # raw fields carried beside the mapped columns (a parent's id); never loaded


def apply_mapping(
    mapping: Mapping, raw: pd.DataFrame, carry: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows for the target, quarantined rows with `record_id`, `reason`, `columns`, `payload`).

    `columns` names the Zuora fields that failed, comma-separated, so that a column failing most
    records can be told from a few bad records. Each `carry` field of the raw records rides along
    in the good rows as `__<field>` (sinks write only their table's columns)."""
    import pandas as pd

    reasons = pd.Series(None, index=raw.index, dtype="object")
    failed_columns = pd.Series(None, index=raw.index, dtype="object")
    out: dict[str, pd.Series] = {}

    def fail(mask: pd.Series, reason: str | pd.Series, column: str) -> None:
        """Every failing column is named: a record quarantined for one reason may have others.
        `reason` is one text for every failing row, or a text per row."""
        mask = mask.fillna(False).astype(bool)
        texts = reason[mask] if isinstance(reason, pd.Series) else [reason] * int(mask.sum())
        reasons[mask] = [t if pd.isna(r) else f"{r}; {t}" for r, t in zip(reasons[mask], texts, strict=True)]
        failed_columns[mask] = [column if pd.isna(c) else f"{c},{column}" for c in failed_columns[mask]]

    for name, col in mapping.columns.items():
        if col.const is not None:
            out[name] = pd.Series([col.const] * len(raw), index=raw.index, dtype="object")
            continue
        series = raw[col.source] if col.source in raw.columns else pd.Series(None, index=raw.index, dtype="object")
        if col.values:
            series = series.map(lambda v, m=col.values: m.get(v, v) if v is not None and v == v else v)
        if col.required:
            fail(series.isna(), f"{col.source}: required value missing", col.source)
        if col.type != "string" and col.values:
            series = series.map(lambda v: None if v is None or v != v else str(v))
        converted, bad = _convert(series, col)
        if bad.any():
            why = series.map(lambda v, c=col: f"{c.source}: {v!r} is not a valid {c.type}")
            fail(bad, why, col.source)
        if col.allowed is not None:
            fail(converted.notna() & ~converted.isin(col.allowed), f"{col.source}: value not allowed", col.source)
        if col.max_length is not None:
            fail(converted.astype("string").str.len() > col.max_length, f"{col.source}: longer than {col.max_length}",
                 col.source)  # fmt: skip
        out[name] = converted
    for field in carry:
        out[f"{CARRY_PREFIX}{field}"] = raw[field] if field in raw.columns else pd.Series(None, index=raw.index)
    frame = pd.DataFrame(out, index=raw.index)
    bad_rows = reasons.notna()
    quarantine = pd.DataFrame(
        {
            "record_id": raw["id"][bad_rows] if "id" in raw.columns else None,
            "reason": reasons[bad_rows],
            "columns": failed_columns[bad_rows],
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
