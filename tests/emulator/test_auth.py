from __future__ import annotations

import time

import pytest
import requests

from include.zuora_emulator import Emulator


def test_token_answer_has_zuora_shape(api):
    r = api.session.post(
        f"{api.base}/oauth/token",
        data={
            "client_id": "demo-client",
            "client_secret": "demo-secret",
            "grant_type": "client_credentials",
        },
    )
    body = r.json()
    assert r.status_code == 200
    assert body["token_type"] == "bearer" and body["expires_in"] == 3599
    assert {"access_token", "scope", "jti"} <= set(body)


@pytest.mark.parametrize(
    "form",
    [
        {
            "client_id": "demo-client",
            "client_secret": "wrong",
            "grant_type": "client_credentials",
        },
        {
            "client_id": "nobody",
            "client_secret": "demo-secret",
            "grant_type": "client_credentials",
        },
    ],
)
def test_bad_credentials_are_refused(api, form):
    r = api.session.post(f"{api.base}/oauth/token", data=form)
    assert r.status_code == 401
    assert "access_token" not in r.json()


@pytest.mark.parametrize("header", [None, "Bearer not-a-token", "Basic abc"])
def test_missing_or_unknown_token_gives_401(api, header):
    headers = {"Authorization": header} if header else {}
    r = requests.get(f"{api.base}/object-query/accounts", headers=headers, timeout=5)
    assert r.status_code == 401
    assert r.json() == {"message": "Authentication error"}


def test_token_expires_after_its_lifetime():
    with Emulator(scale="tiny", token_ttl=1) as emu:
        session = requests.Session()
        token = session.post(
            f"{emu.base_url}/oauth/token",
            data={
                "client_id": "demo-client",
                "client_secret": "demo-secret",
                "grant_type": "client_credentials",
            },
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        assert session.get(f"{emu.base_url}/object-query/accounts", headers=headers).status_code == 200
        time.sleep(1.2)
        assert session.get(f"{emu.base_url}/object-query/accounts", headers=headers).status_code == 401


def test_expire_tokens_control_forces_refresh(fresh_api):
    assert fresh_api.get("/object-query/accounts").status_code == 200
    fresh_api.session.post(f"{fresh_api.base}/_admin/expire-tokens")
    assert fresh_api.get("/object-query/accounts").status_code == 401
    fresh_api.token = fresh_api.new_token()
    assert fresh_api.get("/object-query/accounts").status_code == 200


def test_track_id_is_echoed_and_request_id_is_set(api):
    r = api.get("/object-query/accounts", headers={"Zuora-Track-Id": "run-42"})
    assert r.headers["Zuora-Track-Id"] == "run-42"
    assert len(r.headers["Zuora-Request-Id"]) == 36
