"""Every setting of the library in one place, with its default and where it can be overridden.

| setting | default | override |
| --- | --- | --- |
| include directory (families/, mappings/) | `<project>/include` | env `ZUORA_ETL_INCLUDE_DIR` |
| staging root | `$AIRFLOW_HOME/zuora_staging` | Variable `zuora_etl_staging_root` |
| settle lag | family `settle_seconds` (120 s) | Variable `zuora_etl_settle_seconds` (every family) |
| first load start | whole history | Variable `zuora_etl_initial_watermark` |
| systemic rejection ratio | 0.5 | family `systemic_reject_ratio` |
| systemic rejection minimum rows | 20 | family `systemic_reject_min_rows` |
"""

from __future__ import annotations

import os
from pathlib import Path

from . import INCLUDE_DIR

INCLUDE_DIR_ENV = "ZUORA_ETL_INCLUDE_DIR"

# An object whose records fail one mapping column at this share or more is failing systemically
# (a wrong type, a renamed field), not record by record: it fails before anything loads. Half is
# far above any tenant's share of genuinely bad records and far below "every record fails".
SYSTEMIC_REJECT_RATIO = 0.5
# ...when at least this many records failed that column: a handful of bad records among a handful
# read is dead-lettered and retried like any other, not a reason to stop the family.
SYSTEMIC_REJECT_MIN_ROWS = 20


def include_dir() -> Path:
    """Where family and mapping YAML live; read at call time so a test or a second project can
    point a DagBag at its own copy."""
    return Path(os.environ.get(INCLUDE_DIR_ENV) or INCLUDE_DIR)
