"""Hostile input over HTTP: every request gets a 4xx with a reason, bodies stop at their limit as they
stream in, credentials are checked before a body is read, and nothing reaches the database on the loop.

Some checks call the ASGI app directly with a ``receive`` that counts the chunks it hands out, which is
the only way to see how much of a body the server read before it answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from sqlmodel import select
from starlette.applications import Starlette
from starlette.testclient import TestClient

from liveshow.accounts.models import User
from liveshow.jsonbody import MAX_DEPTH, MAX_JSON_BYTES
from liveshow.shows.models import Show
from tests.test_social_support import Actor, act_as, app_ctx, make_listing, make_show, make_user

JSON = {"Content-Type": "application/json"}
# Deep enough for the standard parser's RecursionError, small enough for every endpoint's size limit.
DEEP = ('{"title": ' + "[" * 1200 + "1" + "]" * 1200 + "}").encode()
DEEP_OBJECTS = ('{"a":' * 600 + "1" + "}" * 600).encode()


def refused(resp: Any, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert body["reason"], body
    if code is not None:
        assert body["error"] == code, body
    return body


@pytest.fixture
def seller(app: Starlette) -> Actor:
    return make_user(app, "seller1")


# ---------------------------------------------------------------- one JSON reader


def test_deeply_nested_json_is_a_400_with_a_reason_on_every_json_endpoint(
    app: Starlette, client: TestClient, seller: Actor
) -> None:
    show = make_show(app, seller, state="ended")
    listing = make_listing(app, seller, "Blue wool coat")
    h = act_as(client, seller)
    posts = [
        ("POST", "/api/shows"),
        ("POST", f"/api/shows/{show.id}/auction"),
        ("POST", f"/api/listings/{listing.id}/like"),
        ("POST", f"/api/shows/{show.id}/reair"),
        ("POST", "/api/listings"),
        ("PATCH", f"/api/listings/{listing.id}"),
        ("PUT", f"/api/shows/{show.id}/lineup"),
        ("POST", f"/api/sellers/{seller.user.username}/follow"),
        ("POST", "/api/notices/read"),
    ]
    for method, path in posts:
        for body in (DEEP, DEEP_OBJECTS):
            resp = client.request(method, path, content=body, headers={**h, **JSON})
            reason = refused(resp, 400, "invalid")["reason"]
            assert "nested" in reason, (path, reason)


def test_json_edge_cases_are_refused_with_reasons(client: TestClient, app: Starlette, seller: Actor) -> None:
    h = act_as(client, seller)
    for body, words in [
        (b"{nope", "Malformed JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"title": NaN}', "NaN"),
        (b'{"title": Infinity}', "Infinity"),
        (b'{"title": 1e999}', "too large"),
        (b'{"title": "\xff"}', "UTF-8"),
        (b'{"title": ' + b"9" * 5000 + b"}", "Malformed JSON"),  # over Python's int digits limit
    ]:
        assert words in refused(client.post("/api/shows", content=body, headers={**h, **JSON}), 400)["reason"]
    refused(
        client.post("/api/shows", content=b'{"title": "x"}', headers={**h, "Content-Type": "text/plain"}), 415
    )
    # just within the depth limit is parsed (and then judged on its fields)
    ok_depth = b'{"title": "x", "pad": ' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}"
    assert client.post("/api/shows", content=ok_depth, headers={**h, **JSON}).status_code == 201


class Upload:
    """A request sent straight to the ASGI app, its body in chunks; counts the chunks the app pulled."""

    def __init__(self, client: TestClient, method: str, path: str, headers: dict[str, str]) -> None:
        self.client, self.method, self.path = client, method, path
        self.headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
        self.pulled = 0

    def send(self, chunks: list[bytes]) -> tuple[int, dict[str, Any]]:
        import json

        async def run() -> tuple[int, dict[str, Any]]:
            messages: list[dict[str, Any]] = []

            async def receive() -> dict[str, Any]:
                if self.pulled < len(chunks):
                    self.pulled += 1
                    more = self.pulled < len(chunks)
                    return {"type": "http.request", "body": chunks[self.pulled - 1], "more_body": more}
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                messages.append(message)

            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": self.method,
                "scheme": "http",
                "path": self.path,
                "raw_path": self.path.encode(),
                "query_string": b"",
                "root_path": "",
                "headers": [(b"host", b"127.0.0.1"), *self.headers],
                "client": ("127.0.0.1", 40000),
                "server": ("127.0.0.1", 80),
            }
            await self.client.app(scope, receive, send)
            status = next(m["status"] for m in messages if m["type"] == "http.response.start")
            body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
            return status, json.loads(body) if body.startswith(b"{") else {}

        assert self.client.portal is not None
        return self.client.portal.call(run)


def cookie_headers(client: TestClient, actor: Actor) -> dict[str, str]:
    act_as(client, actor)
    return {"Cookie": f"liveshow_session={actor.cookie}", "X-CSRF-Token": actor.csrf}


@pytest.mark.parametrize(
    "path",
    ["/api/shows", "/api/shows/{show}/auction", "/api/listings/{listing}/like", "/api/shows/{show}/reair"],
)
def test_a_chunked_json_body_stops_at_the_limit(
    app: Starlette, client: TestClient, seller: Actor, path: str
) -> None:
    show = make_show(app, seller, state="ended")
    listing = make_listing(app, seller, "Blue wool coat")
    url = path.format(show=show.id, listing=listing.id)
    headers = {**cookie_headers(client, seller), **JSON}  # no Content-Length: chunked
    chunk = b" " * 4096
    upload = Upload(client, "POST", url, headers)
    status, body = upload.send([b'{"title": "x"', *[chunk] * 64, b"}"])  # 256 KiB of whitespace
    assert status == 413 and body["error"] == "too_large" and body["reason"]
    assert upload.pulled * len(chunk) <= MAX_JSON_BYTES + 2 * len(chunk), upload.pulled  # stopped early


def test_a_declared_length_over_the_limit_is_refused_unread(client: TestClient, seller: Actor) -> None:
    headers = {**cookie_headers(client, seller), **JSON, "Content-Length": str(MAX_JSON_BYTES + 1)}
    upload = Upload(client, "POST", "/api/shows", headers)
    status, _ = upload.send([b"{" + b" " * MAX_JSON_BYTES + b"}"])
    assert status == 413 and upload.pulled == 0


def many_fields(count: int) -> list[bytes]:
    return [f"f{i}=".encode() + b"x" * 60000 + b"&" for i in range(count)]


def test_a_chunked_form_stops_at_the_forms_total(client: TestClient) -> None:
    """read_form knew the total only from Content-Length; a chunked sign-up form of 4 MiB went through
    to the parser whole (and was then refused for its CSRF token, 403)."""
    client.get("/signup")
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": cookie}
    upload = Upload(client, "POST", "/signup", headers)
    status, body = upload.send(many_fields(64))  # each field under the part limit, 3.8 MB in all
    assert status == 413, body
    assert upload.pulled <= (1024 * 1024) // 60000 + 2, upload.pulled


def test_a_csrf_checked_form_post_is_bounded_too(app: Starlette, client: TestClient, seller: Actor) -> None:
    """Handlers that only check the form's CSRF field (delete a replay, re-air, order actions) parsed
    the whole form first, with no limit at all."""
    show = make_show(app, seller, state="ended")
    act_as(client, seller)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"liveshow_session={seller.cookie}",
    }
    upload = Upload(client, "POST", f"/shows/{show.id}/reair", headers)
    status, _ = upload.send([b"csrf_token=x&", *many_fields(64)])
    assert status == 413
    assert upload.pulled <= (1024 * 1024) // 60000 + 2, upload.pulled


def test_a_raw_photo_upload_stops_at_the_photo_limit(
    app: Starlette, client: TestClient, seller: Actor
) -> None:
    listing = make_listing(app, seller, "Blue wool coat")
    limit = app_ctx(app).settings.max_photo_bytes
    headers = {**cookie_headers(client, seller), "Content-Type": "image/jpeg"}
    chunk = b"\xff" * (1024 * 1024)
    upload = Upload(client, "POST", f"/api/listings/{listing.id}/photos", headers)
    status, body = upload.send([chunk] * (limit // len(chunk) + 8))
    assert status == 413 and body["error"] == "too_large"
    assert upload.pulled <= limit // len(chunk) + 1


# ---------------------------------------------------------------- authenticate before reading


def test_the_auction_api_refuses_a_wrong_token_before_reading(
    app: Starlette, client: TestClient, seller: Actor
) -> None:
    show = make_show(app, seller, state="live")
    headers = {"Authorization": "Bearer not-a-token", **JSON}
    upload = Upload(client, "POST", f"/api/shows/{show.id}/auction", headers)
    status, body = upload.send([DEEP])
    assert (status, body["error"], upload.pulled) == (401, "not_authenticated", 0)


def test_whip_checks_the_stream_key_before_the_body(
    app: Starlette, client: TestClient, seller: Actor
) -> None:
    show = make_show(app, seller)
    url = f"/whip/{show.id}"
    wrong = {"Authorization": "Bearer wrong-key"}
    # a wrong key with a bad body, a wrong type or an oversized body: 401 every time
    refused(client.post(url, content="hello", headers={**wrong, "Content-Type": "application/sdp"}), 401)
    refused(client.post(url, content="hello", headers={**wrong, "Content-Type": "text/plain"}), 401)
    big = "v=0\r\n" + "a=x\r\n" * 20000
    refused(client.post(url, content=big, headers={**wrong, "Content-Type": "application/sdp"}), 401)
    # ... and nothing of the body is read
    upload = Upload(client, "POST", url, {**wrong, "Content-Type": "application/sdp"})
    status, body = upload.send([b"v=0\r\n", b"garbage" * 1000])
    assert (status, body["error"], upload.pulled) == (401, "not_authenticated", 0)
    # with the right key the body is judged: the same bad offer is a 400
    right = {"Authorization": f"Bearer {show.stream_key}", "Content-Type": "application/sdp"}
    refused(client.post(url, content="hello", headers=right), 400, "bad_sdp")


def test_trickle_to_an_unknown_session_is_refused_unread(
    client: TestClient, app: Starlette, seller: Actor
) -> None:
    show = make_show(app, seller)
    headers = {"Content-Type": "application/trickle-ice-sdpfrag"}
    for prefix in ("whip", "whep"):
        upload = Upload(client, "PATCH", f"/{prefix}/{show.id}/no-such-session", headers)
        status, _ = upload.send([b"a=candidate:" + b"x" * 100_000])
        assert (status, upload.pulled) == (404, 0)


# ---------------------------------------------------------------- the database stays off the loop


@contextlib.contextmanager
def sessions_opened_on_the_loop(app: Starlette) -> Iterator[list[str]]:
    """Records every database session opened by a thread that is running an event loop."""
    db = app_ctx(app).db
    original = db.session
    on_loop: list[str] = []

    def watched() -> Any:
        try:
            asyncio.get_running_loop()
            import traceback

            on_loop.append("".join(traceback.format_stack(limit=6)))
        except RuntimeError:
            pass
        return original()

    db.session = watched  # type: ignore[method-assign]
    try:
        yield on_loop
    finally:
        db.session = original  # type: ignore[method-assign]


async def _offer() -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    pc.addTransceiver("audio", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    text: str = pc.localDescription.sdp
    await pc.close()
    return text


def test_handlers_look_up_the_user_and_render_pages_off_the_event_loop(
    app: Starlette, client: TestClient, seller: Actor
) -> None:
    show = make_show(app, seller)
    offer = asyncio.run(_offer())
    h = act_as(client, seller)
    with sessions_opened_on_the_loop(app) as on_loop:
        assert client.get(f"/api/shows/{show.id}/media").status_code == 200
        resp = client.post(f"/whep/{show.id}", content=offer, headers={"Content-Type": "application/sdp"})
        assert resp.status_code == 409  # not live yet; the viewer was looked up all the same
        assert client.post(f"/api/shows/{show.id}/end", headers=h).status_code == 200
        # an error page names who is signed in: an async handler's refusal rendered it on the loop
        forged = client.post("/listings/new", data={"title": "x"}, headers={"Accept": "text/html"})
        assert forged.status_code == 403 and "seller1" in forged.text
        # ... and so did a form sent back with its errors
        for path in ("/listings/new", "/shows/new", f"/shows/{show.id}/edit"):
            again = client.post(
                path, data={"csrf_token": seller.csrf, "title": ""}, headers={"Accept": "text/html"}
            )
            assert again.status_code == 400 and "seller1" in again.text, (path, again.status_code)
    assert on_loop == [], on_loop[0]


# ---------------------------------------------------------------- one text cleaner


def test_bidi_overrides_never_reach_titles_or_display_names(
    app: Starlette, client: TestClient, seller: Actor
) -> None:
    h = act_as(client, seller)
    resp = client.post("/api/shows", json={"title": "Sale \u202egpj.exe\u202c now\u2066!\u2069"}, headers=h)
    assert resp.status_code == 201, resp.text
    with app_ctx(app).db.session() as session:
        show = session.get(Show, resp.json()["id"])
        assert show is not None and show.title == "Sale gpj.exe now!"
    listing = client.post(
        "/api/listings",
        json={
            "title": "Coat\u200f\u202d",
            "description": "line\u202e1\r\n\r\n\r\n\r\nline 2\x00",
            "price_cents": 100,
        },
        headers=h,
    )
    assert listing.status_code == 201, listing.text
    assert listing.json()["title"] == "Coat"
    assert listing.json()["description"] == "line1\n\nline 2"

    client.cookies.clear()
    from tests.helpers import form_csrf

    token = form_csrf(client, "/signup")
    form = {"username": "mallory", "password": "correct horse battery", "csrf_token": token}
    resp = client.post(
        "/signup", data={**form, "display_name": "\u202eＡｄｍｉｎ\u202c \t team"}, follow_redirects=False
    )
    assert resp.status_code == 303, resp.text
    with app_ctx(app).db.session() as session:
        user = session.exec(select(User).where(User.username == "mallory")).one()
        assert user.display_name == "Admin team"  # NFKC: full-width letters read as the plain ones


def test_accounts_made_outside_the_form_get_clean_display_names_too(app: Starlette) -> None:
    """`liveshow create-user` and the demo call create_user directly, not through the sign-up form."""
    from liveshow.accounts.service import create_user

    with app_ctx(app).db.session() as session:
        user = create_user(session, "cli-user", "correct horse battery", display_name=" \u202eBoss\u200b\n")
        assert user.display_name == "Boss"
        assert (
            create_user(session, "plain", "correct horse battery", display_name="\u2066").display_name
            == "plain"
        )


def test_a_malformed_form_is_answered_in_the_error_shape(
    app: Starlette, client: TestClient, seller: Actor
) -> None:
    """Forms read only for their CSRF field answered a broken multipart body with Starlette's plain text."""
    show = make_show(app, seller, state="ended")
    act_as(client, seller)
    for path in (f"/shows/{show.id}/reair", "/signup"):
        resp = client.post(
            path, content=b"xx", headers={"Content-Type": "multipart/form-data", "Accept": "application/json"}
        )
        assert "boundary" in refused(resp, 400, "invalid")["reason"]
