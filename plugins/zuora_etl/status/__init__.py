"""The "Zuora Sync" page of the Airflow UI: what the state database and the watermarks say now.

- `snapshot`: plain functions that read the state database, the watermark Variables and the
  reports root into typed values (no HTTP, testable on a SQLite file);
- `page`: the server-side HTML of a snapshot;
- `app`: the FastAPI app the plugin (`plugins/zuora_status.py`) mounts in the API server, with
  the login check, the JSON, the report files and the replay endpoint.
"""

# The header the replay POST must carry: a cross-site form cannot set it, and a cross-site script
# cannot send it without a CORS preflight that the API server does not grant.
CSRF_HEADER = "X-Zuora-Sync"
