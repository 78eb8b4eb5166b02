"""Airflow's plugin manager finds the page in plugins/: its app under /zuora-sync and a top-level
navigation entry shown inside the UI."""

from __future__ import annotations

from airflow import plugins_manager
from airflow.api_fastapi.core_api.datamodels.plugins import ExternalViewResponse
from fastapi import FastAPI


def test_the_plugin_mounts_the_app_and_adds_a_navigation_entry():
    apps, _ = plugins_manager.get_fastapi_plugins()
    ours = [a for a in apps if a["url_prefix"] == "/zuora-sync"]
    assert len(ours) == 1 and isinstance(ours[0]["app"], FastAPI) and ours[0]["name"] == "Zuora Sync"
    assert {r.path for r in ours[0]["app"].routes} >= {"/", "/api/status", "/api/replay"}

    assert not {k: v for k, v in plugins_manager.get_import_errors().items() if "zuora" in k}
    views = [v for p in plugins_manager._get_plugins()[0] for v in p.external_views]
    view = ExternalViewResponse.model_validate(next(v for v in views if v["name"] == "Zuora Sync"))
    assert (view.href, view.destination, view.url_route, view.nav_top_level) == ("/zuora-sync/", "nav", "zuora-sync",
                                                                                 True)  # fmt: skip
