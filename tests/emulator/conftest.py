from __future__ import annotations

import pytest
import requests

from include.zuora_emulator import Emulator


class Api:
    """A bare HTTP client for contract tests: no retries, so every answer is seen as served."""

    def __init__(self, emu: Emulator) -> None:
        self.emu, self.base = emu, emu.base_url
        self.session = requests.Session()
        self.token = self.new_token()

    def new_token(self) -> str:
        r = self.session.post(
            f"{self.base}/oauth/token",
            data={
                "client_id": "demo-client",
                "client_secret": "demo-secret",
                "grant_type": "client_credentials",
            },
        )
        r.raise_for_status()
        return r.json()["access_token"]

    def get(self, path: str, params=None, **kw) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kw.pop("headers", {})}
        return self.session.get(f"{self.base}{path}", params=params, headers=headers, timeout=10, **kw)

    def send(self, method: str, path: str, json=None) -> requests.Response:
        return self.session.request(
            method,
            f"{self.base}{path}",
            json=json,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )

    def pages(self, obj: str, params: list[tuple[str, str]]) -> list[list[dict]]:
        out, cursor = [], None
        while True:
            r = self.get(
                f"/object-query/{obj}",
                params + ([("cursor", cursor)] if cursor else []),
            )
            assert r.status_code == 200, r.text
            body = r.json()
            out.append(body["data"])
            cursor = body.get("nextPage")
            if not cursor:
                return out

    def all(self, obj: str, params: list[tuple[str, str]]) -> list[dict]:
        return [rec for page in self.pages(obj, params) for rec in page]

    def truth(self, obj: str, filters: list[str] = ()) -> list[dict]:
        r = self.session.get(f"{self.base}/_admin/truth/{obj}", params=[("filter[]", f) for f in filters])
        assert r.status_code == 200, r.text
        return r.json()["data"]

    def mutate(self, ops: list[dict], at: str | None = None) -> list[dict]:
        r = self.session.post(
            f"{self.base}/_admin/mutate",
            json={"ops": ops, **({"at": at} if at else {})},
        )
        assert r.status_code == 200, r.text
        return r.json()["results"]


@pytest.fixture
def api(shared_emulator: Emulator) -> Api:
    return Api(shared_emulator)


@pytest.fixture
def fresh_api(fresh_emulator: Emulator) -> Api:
    return Api(fresh_emulator)
