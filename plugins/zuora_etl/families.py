"""Family YAML (include/families/*.yaml) -> validated models: objects, filters, target, schedule."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .catalog import OBJECTS, get_object
from .conditions import Condition, parse_all
from .settings import (
    DEFAULT_OVERLAP_S,
    DEFAULT_SETTLE_S,
    SINK_CONNECTIONS,
    SYSTEMIC_REJECT_MIN_ROWS,
    SYSTEMIC_REJECT_RATIO,
    include_dir,
)

FILTER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*\.(EQ|NE|LT|GT|LE|GE|SW|IN):.+$")


class ParentLink(BaseModel):
    """Extract this object by its parents' ids (`key.IN:[...]`) instead of by updatedDate window:
    the items of Posted invoices only, whatever their own updatedDate."""

    model_config = ConfigDict(extra="forbid")
    object: str
    key: str


class FamilyObject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    filters: list[str] = Field(default_factory=list)
    mapping: str | None = None  # include/mappings/<mapping>.yaml; default: the object's name
    parent: ParentLink | None = None
    mark_transferred: bool = False
    # Which records the family delivers, decided per record after reading (conditions.py): those
    # failing it are skipped, or, when the family delivered them before, sent as a cancel.
    deliver_if: list[str] = Field(default_factory=list)

    @field_validator("name")
    @classmethod
    def _known(cls, v: str) -> str:
        get_object(v)
        return v

    @field_validator("filters")
    @classmethod
    def _filters(cls, v: list[str]) -> list[str]:
        for f in v:
            if not FILTER_RE.match(f):
                raise ValueError(f"filter {f!r} is not of the form field.OP:value (OP: EQ NE LT GT LE GE SW IN)")
            if " " in f.split(":", 1)[1] and f.split(".", 1)[0].lower().endswith("date"):
                raise ValueError(f"filter {f!r}: write datetimes with 'T', never a space")
        return v

    @field_validator("deliver_if")
    @classmethod
    def _conditions(cls, v: list[str]) -> list[str]:
        parse_all(v)
        return v

    @model_validator(mode="after")
    def _condition_fields(self) -> FamilyObject:
        spec = OBJECTS[self.name]
        for c in self.conditions:
            if c.field not in spec.fields:
                raise ValueError(f"{self.name}: deliver_if {c.field}.{c.op}:{c.value}: {c.field} is not a field")
        return self

    @property
    def conditions(self) -> list[Condition]:
        return parse_all(self.deliver_if)

    @property
    def selection(self) -> list[str]:
        """Every condition a record the family delivers meets: the source filters and `deliver_if`."""
        return [*self.filters, *self.deliver_if]

    @property
    def mapping_name(self) -> str:
        return self.mapping or self.name


class Family(BaseModel):
    model_config = ConfigDict(extra="forbid")
    family: str
    dag_id: str
    description: str
    target: Literal["crm", "erp"]
    sink_conn_id: str | None = None
    schedule: str | None = "*/30 * * * *"
    owner: str = "data-integration"
    tags: list[str] = Field(default_factory=list)
    retries: int = 2
    retry_delay_minutes: float = 5
    settle_seconds: int = DEFAULT_SETTLE_S
    overlap_seconds: int = DEFAULT_OVERLAP_S
    slices: int | None = Field(default=None, ge=1, le=16)  # None: by expected volume (planning.slice_count)
    systemic_reject_ratio: float = Field(default=SYSTEMIC_REJECT_RATIO, gt=0, le=1)
    systemic_reject_min_rows: int = Field(default=SYSTEMIC_REJECT_MIN_ROWS, ge=1)
    objects: list[FamilyObject]

    @model_validator(mode="after")
    def _check(self) -> Family:
        names = [o.name for o in self.objects]
        if len(set(names)) != len(names):
            raise ValueError(f"family {self.family}: an object is listed twice")
        for i, o in enumerate(self.objects):
            if o.parent:
                if o.parent.object not in names[:i]:
                    raise ValueError(f"{o.name}: parent {o.parent.object} must be listed before it in {self.family}")
                if o.parent.key not in OBJECTS[o.name].fields:
                    raise ValueError(f"{o.name}: {o.parent.key} is not a field of {o.name}")
            spec = OBJECTS[o.name]
            if o.mark_transferred and not (spec.action_type or spec.memo_path):
                raise ValueError(f"{o.name}: Zuora cannot flag {o.name} as transferred to accounting")
        return self

    @property
    def sink(self) -> str:
        return self.sink_conn_id or SINK_CONNECTIONS[self.target]

    def scope(self, name: str) -> str:
        """Which records of `name` this family loads, in words: two families may share a target
        table only when they load the same records."""
        o = self.get(name)
        rules = sorted({*o.filters, *o.deliver_if})
        text = f"{o.name} where {' and '.join(rules)}" if rules else f"every {o.name}"
        return f"{text} of {self.scope(o.parent.object)}" if o.parent else text

    def get(self, name: str) -> FamilyObject:
        for o in self.objects:
            if o.name == name:
                return o
        raise KeyError(f"{name} is not an object of family {self.family}")


def families_dir() -> Path:
    return include_dir() / "families"


def load_family(path: Path) -> Family:
    try:
        return Family.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise ValueError(f"no family file {path}") from None
    except Exception as exc:
        raise ValueError(f"{path}: {exc}") from exc


@cache
def load_families(directory: Path | None = None) -> tuple[Family, ...]:
    directory = directory or families_dir()
    families = tuple(load_family(p) for p in sorted(directory.glob("*.yaml")))
    ids = [f.family for f in families]
    if len(set(ids)) != len(ids):
        raise ValueError(f"two family files in {directory} share a family name")
    return families


def usable_families(directory: Path | None = None) -> tuple[list[Family], dict[str, str]]:
    """Every family whose file validates, and why the others do not (file name -> error): a DAG
    that spans families (replay) keeps serving the good ones when one file is broken."""
    directory = directory or families_dir()
    good, broken = [], {}
    for path in sorted(directory.glob("*.yaml")):
        try:
            good.append(load_family(path))
        except ValueError as exc:
            broken[path.name] = str(exc)
    return good, broken


def get_family(name: str, directory: Path | None = None) -> Family:
    """A family by name or DAG id, read from its own file (`<family>.yaml`) when there is one, so
    that one broken family file does not stop the others."""
    directory = directory or families_dir()
    own = directory / f"{name.removeprefix('zuora_')}.yaml"
    if own.exists():
        family = load_family(own)
        if name in (family.family, family.dag_id):
            return family
    for f in load_families(directory):
        if f.family == name or f.dag_id == name:
            return f
    raise ValueError(f"unknown family {name!r}; known: {', '.join(f.family for f in load_families(directory))}")
