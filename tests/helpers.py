"""Small helpers for tests."""

from __future__ import annotations

import re

from starlette.testclient import TestClient

_CSRF_RE = re.compile(r'name="csrf-token" content="([^"]+)"')


def form_csrf(client: TestClient, path: str = "/") -> str:
    """The session's CSRF token, as the page's meta tag carries it."""
    resp = client.get(path)
    match = _CSRF_RE.search(resp.text)
    assert match, f"no CSRF meta tag on {path}"
    return match.group(1)
