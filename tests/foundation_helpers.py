"""Helpers for the foundation tests: real images, signed-in clients, listings made through the form."""

from __future__ import annotations

import io
import re

from PIL import Image
from starlette.testclient import TestClient

from tests.helpers import form_csrf


def image_bytes(
    fmt: str = "JPEG", size: tuple[int, int] = (320, 240), color: tuple[int, int, int] = (200, 40, 90)
) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt)
    return out.getvalue()


def csrf(client: TestClient) -> str:
    return form_csrf(client, "/")


def create_listing(
    client: TestClient, title: str = "Red silk blouse", price: str = "12.50", photos: int = 1, **extra: str
) -> int:
    token = csrf(client)
    data = {
        "csrf_token": token,
        "title": title,
        "price": price,
        "category": "tops",
        "condition": "good",
        "quantity": "1",
        **extra,
    }
    files = [("photos", (f"p{i}.jpg", image_bytes(), "image/jpeg")) for i in range(photos)]
    resp = client.post("/listings/new", data=data, files=files or None, follow_redirects=False)
    assert resp.status_code == 303, resp.text
    match = re.fullmatch(r"/listings/(\d+)", resp.headers["location"])
    assert match
    return int(match.group(1))


def api_create_show(client: TestClient, **body: object) -> dict[str, object]:
    resp = client.post(
        "/api/shows", json={"title": "Friday drop", **body}, headers={"X-CSRF-Token": csrf(client)}
    )
    assert resp.status_code == 201, resp.text
    data: dict[str, object] = resp.json()
    return data
