"""Zuora ⇄ CRM/ERP sync library: hooks, operators, sinks, mappings, watermarks and staging."""

from __future__ import annotations

from pathlib import Path

# The Astro project root: plugins/zuora_etl/ -> project; include/ lives beside plugins/.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
INCLUDE_DIR = PROJECT_ROOT / "include"
