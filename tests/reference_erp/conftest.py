from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from include.reference_erp import ReferenceErp

AUTH = ("erp", "erp-secret")


class Api:
    """A bare client (no retries): every answer is seen as served."""

    def __init__(self, erp: ReferenceErp) -> None:
        self.erp, self.base = erp, erp.url
        self.session = requests.Session()
        self.session.auth = AUTH

    def call(self, method: str, path: str, json=None, key: str | None = None, **kw) -> requests.Response:
        headers = {"Idempotency-Key": key} if key else {}
        return self.session.request(method, f"{self.base}{path}", json=json, headers=headers, timeout=10, **kw)

    def get(self, path: str) -> requests.Response:
        return self.call("GET", path)

    def post(self, path: str, json=None, key: str | None = None) -> requests.Response:
        return self.call("POST", path, json, key)

    def put(self, path: str, json=None, key: str | None = None) -> requests.Response:
        return self.call("PUT", path, json, key)

    def patch(self, path: str, json=None, key: str | None = None) -> requests.Response:
        return self.call("PATCH", path, json, key)

    def statuses(self, n: int, path: str = "/api/v1/invoices") -> list[int]:
        return [self.get(path).status_code for _ in range(n)]


@pytest.fixture
def erp() -> Iterator[ReferenceErp]:
    with ReferenceErp() as server:
        yield server


@pytest.fixture
def api(erp: ReferenceErp) -> Api:
    return Api(erp)


def invoice(external_id: str, **fields) -> dict:
    """A wrapped invoice document, as the ERP families send them."""
    return {"invoice": {"external_id": external_id, "number": f"INV-{external_id}", **fields}}
