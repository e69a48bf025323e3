"""Checking Kestra's error shape in the API tests."""

from __future__ import annotations

from typing import Any

import httpx


def assert_kestra_error(reply: httpx.Response, status: int, *paths: str) -> dict[str, Any]:
    """Kestra's (Micronaut's) error: message, _links, and each invalid field's path."""
    assert reply.status_code == status, reply.text
    body: dict[str, Any] = reply.json()
    assert isinstance(body["message"], str) and "_links" in body, body
    if paths:
        assert [e["path"] for e in body["_embedded"]["errors"]] == list(paths), body
    return body
