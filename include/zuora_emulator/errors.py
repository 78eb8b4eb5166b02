"""Zuora's error shape: `{"reasons": [{"code": ..., "message": ...}], "requestId": ...}`."""

from __future__ import annotations


class ApiError(Exception):
    """An error answer. Codes end in Zuora's class digits: 20-27 caller errors, 60/61/70 retryable."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}

    def body(self, request_id: str) -> dict:
        return {
            "reasons": [{"code": self.code, "message": self.message}],
            "requestId": request_id,
        }
