from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import requests

from include.zuora_emulator.server import free_port

ROOT = Path(__file__).resolve().parents[2]


def test_serve_prints_the_url_and_applies_faults(tmp_path):
    profile = tmp_path / "faults.json"
    profile.write_text(json.dumps({"rules": [{"kind": "429", "every": 2}]}))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "include.zuora_emulator",
            "serve",
            "--port",
            str(port),
            "--scale",
            "tiny",
            "--seed",
            "3",
            "--tz",
            "-08:00",
            "--faults",
            str(profile),
            "--latency-ms",
            "1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in line
        base = f"http://127.0.0.1:{port}"
        token = requests.post(
            f"{base}/oauth/token",
            data={
                "client_id": "demo-client",
                "client_secret": "demo-secret",
                "grant_type": "client_credentials",
            },
            timeout=5,
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        first = requests.get(f"{base}/object-query/accounts", headers=headers, timeout=5)
        second = requests.get(f"{base}/object-query/accounts", headers=headers, timeout=5)
        assert (first.status_code, second.status_code) == (200, 429)
        assert first.json()["data"][0]["updatedDate"].endswith("-08:00")
        assert requests.get(f"{base}/_admin/health", timeout=5).json()["seed"] == 3
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _token(base: str) -> dict[str, str]:
    token = requests.post(
        f"{base}/oauth/token",
        data={"client_id": "demo-client", "client_secret": "demo-secret", "grant_type": "client_credentials"},
        timeout=5,
    ).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_serve_takes_disabled_objects_and_no_custom_fields():
    port = free_port()
    cmd = [sys.executable, "-m", "include.zuora_emulator", "serve", "--port", str(port), "--scale", "tiny"]
    proc = subprocess.Popen(
        [*cmd, "--disabled-objects", "orders, order-actions,order-line-items", "--no-custom-fields"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert f"http://127.0.0.1:{port}" in proc.stdout.readline()
        base = f"http://127.0.0.1:{port}"
        health = requests.get(f"{base}/_admin/health", timeout=5).json()
        assert health["disabled_objects"] == ["order-actions", "order-line-items", "orders"]
        assert health["custom_fields"] is False
        headers = _token(base)
        r = requests.get(f"{base}/object-query/orders", headers=headers, timeout=5)
        assert r.status_code == 400 and r.json()["reasons"][0]["code"] == 50000020
        r = requests.get(f"{base}/object-query/accounts?fields[]=crmAccountId__c", headers=headers, timeout=5)
        assert r.status_code == 400
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_refuses_an_unknown_disabled_object():
    proc = subprocess.run(
        [sys.executable, "-m", "include.zuora_emulator", "serve", "--port", str(free_port()), "--disabled-objects",
         "widgets"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "widgets" in proc.stderr


def test_serve_sizes_the_tenant_by_accounts_and_reports_requests_in_flight():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "include.zuora_emulator", "serve", "--port", str(port), "--accounts", "7",
         "--latency-ms", "200"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert "accounts-7 tenant" in proc.stdout.readline()
        assert proc.stdout.readline().split()[0] == "7"  # "  7 accounts, ... invoices, ... invoice items"
        base = f"http://127.0.0.1:{port}"
        assert requests.get(f"{base}/_admin/counts", timeout=5).json()["accounts"] == 7
        assert requests.get(f"{base}/_admin/health", timeout=5).json()["scale"] == "accounts-7"
        headers = _token(base)
        requests.post(f"{base}/_admin/stats", timeout=5)
        threads = [
            threading.Thread(target=requests.get, args=(f"{base}/object-query/accounts",), kwargs={"headers": headers})
            for _ in range(3)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stats = requests.get(f"{base}/_admin/stats", timeout=5).json()
        assert stats["requests"]["object-query"] == 3 and stats["rate_limited"] == 0
        assert 2 <= stats["max_requests_in_flight"] <= 3  # 200 ms answers overlap
        after_reset = requests.post(f"{base}/_admin/stats", timeout=5).json()
        assert after_reset["max_requests_in_flight"] == 0 and after_reset["requests"] == {}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_serve_refuses_a_tenant_without_accounts():
    proc = subprocess.run(
        [sys.executable, "-m", "include.zuora_emulator", "serve", "--port", str(free_port()), "--accounts", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "--accounts" in proc.stderr
