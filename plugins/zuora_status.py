"""Airflow plugin: the "Zuora Sync" page (zuora_etl.status) in the UI's navigation.

`fastapi_apps` mounts the page's FastAPI app in the API server under `/zuora-sync`; `external_views`
adds "Zuora Sync" to the navigation's top level, shown inside the UI (`url_route`: `/plugin/zuora-sync`). The
app checks the caller's Airflow login itself: plugin apps are not behind the API's auth.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin
from zuora_etl.status.app import PREFIX, create_app

zuora_sync_app = create_app()


class ZuoraStatusPlugin(AirflowPlugin):
    name = "zuora_status"
    fastapi_apps = [{"app": zuora_sync_app, "url_prefix": PREFIX, "name": "Zuora Sync"}]
    external_views = [
        {
            "name": "Zuora Sync",
            "href": f"{PREFIX}/",
            "destination": "nav",
            "url_route": "zuora-sync",
            "nav_top_level": True,
        }
    ]
