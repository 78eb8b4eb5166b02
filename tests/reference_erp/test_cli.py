from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import requests

from include.reference_erp import ReferenceErp
from include.reference_erp.server import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_serve_prints_the_url_serves_and_keeps_its_db(tmp_path):
    profile = tmp_path / "faults.json"
    profile.write_text(json.dumps({"script": [503]}))
    db = tmp_path / "erp.sqlite3"
    port = free_port()
    cmd = [sys.executable, "-m", "include.reference_erp", "serve", "--port", str(port), "--db", str(db),
           "--username", "svc", "--password-env", "TEST_ERP_PASSWORD", "--faults", str(profile)]  # fmt: skip
    env = {**os.environ, "TEST_ERP_PASSWORD": "s3cret-pw"}
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        assert base in line and "s3cret-pw" not in line
        auth = ("svc", "s3cret-pw")
        assert requests.get(f"{base}/api/v1/invoices", auth=("erp", "erp-secret"), timeout=5).status_code == 401
        body = {"invoice": {"external_id": "A"}}
        assert requests.post(f"{base}/api/v1/invoices", json=body, auth=auth, timeout=5).status_code == 503
        assert requests.post(f"{base}/api/v1/invoices", json=body, auth=auth, timeout=5).status_code == 201
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0
    with ReferenceErp(db_path=db) as erp:
        assert [d["external_id"] for d in erp.documents("invoices")] == ["A"]


def test_serve_refuses_a_missing_password_variable():
    env = {k: v for k, v in os.environ.items() if k != "TEST_ERP_PASSWORD_UNSET"}
    proc = subprocess.run(
        [sys.executable, "-m", "include.reference_erp", "serve", "--port", str(free_port()), "--password-env",
         "TEST_ERP_PASSWORD_UNSET"],
        cwd=ROOT, capture_output=True, text=True, timeout=30, env=env,
    )  # fmt: skip
    assert proc.returncode == 2 and "TEST_ERP_PASSWORD_UNSET" in proc.stderr
