"""The OpenAPI description (/openapi.json) against the app's routes, and a Hypothesis fuzzer over every
operation it documents: hostile JSON bodies (wrong types, huge and negative numbers, deep nesting, long
strings, control and bidi characters, missing and extra fields, mutations of a valid body), hostile path
parameters, wrong content types and credentials. Each answer must be a success or a 4xx with a JSON
{error, reason}, never a 5xx; afterwards the app must still be healthy (/healthz and /readyz 200, a room
still answers a ping, a chat message and a claim).

The number of examples is LIVESHOW_FUZZ_EXAMPLES (tests/fuzzkit.py)."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx2
import pytest
from hypothesis import given
from hypothesis import strategies as st
from openapi_spec_validator import validate
from starlette.routing import BaseRoute, Mount, Route

from liveshow import openapi
from liveshow.accounts.service import issue_token
from liveshow.app import create_app
from liveshow.db import Database
from tests.auction_fixtures import World, make_world
from tests.fuzzkit import (
    FUZZ_SETTINGS,
    ServerProcess,
    SyncPeer,
    dumps,
    json_values,
    mutated,
    short_text,
    texts,
)
from tests.roomkit import session_cookie

# A failing example can be a 40 kB string; Hypothesis warns when it prints one.
pytestmark = pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisWarning")

DOCUMENTED_PREFIXES = (
    "/api/",
    "/whip/",
    "/whep/",
    "/hls/",
    "/healthz",
    "/readyz",
    "/metrics",
    "/openapi.json",
)
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def app_routes(routes: list[BaseRoute], prefix: str = "") -> Iterator[tuple[str, set[str]]]:
    """(path in OpenAPI's template form, methods) of every HTTP route, mounts included."""
    for route in routes:
        if isinstance(route, Mount):
            yield from app_routes(list(route.routes), prefix + route.path)
        elif isinstance(route, Route):
            path = re.sub(r"{(\w+):\w+}", r"{\1}", prefix + route.path)
            yield path, {m.lower() for m in route.methods or ()}


def documented_operations() -> dict[str, set[str]]:
    return {path: {m for m in item if m in METHODS} for path, item in openapi.document()["paths"].items()}


# ---------------------------------------------------------------- the document against the routes


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, sqlite_template: Path) -> Iterator[FuzzApi]:
    env = FuzzApi(tmp_path_factory.mktemp("fuzz-api"), sqlite_template)
    yield env
    env.close()


def test_every_public_route_is_documented_with_its_methods(served: FuzzApi) -> None:
    in_app: dict[str, set[str]] = {}
    for path, methods in app_routes(list(served.app.routes)):
        if path.startswith(DOCUMENTED_PREFIXES):
            # HEAD comes with every GET in Starlette; the document lists GET.
            in_app.setdefault(path, set()).update(methods - {"head"})
    documented = documented_operations()
    missing = {
        p: sorted(m - documented.get(p, set())) for p, m in in_app.items() if m - documented.get(p, set())
    }
    assert not missing, f"routes not in liveshow/openapi.py: {missing}"
    unknown = {p: sorted(m - in_app.get(p, set())) for p, m in documented.items() if m - in_app.get(p, set())}
    assert not unknown, f"documented but not served: {unknown}"


def test_document_is_openapi_3_1_with_auth_and_error_shape(served: FuzzApi) -> None:
    resp = served.client.get("/openapi.json")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("application/json")
    doc = resp.json()
    assert doc == json.loads(json.dumps(openapi.document()))
    assert doc["openapi"] == "3.1.0"
    validate(doc)  # against the OpenAPI 3.1 schema
    schemes = doc["components"]["securitySchemes"]
    assert {"session", "csrf", "apiToken", "streamKey"} <= set(schemes)
    assert doc["paths"]["/api/shows"]["post"]["security"]
    for path, item in doc["paths"].items():
        params = {p["name"] for p in item.get("parameters", []) if p["in"] == "path"}
        assert params == set(re.findall(r"{(\w+)}", path)), path
        for method in set(item) & set(METHODS):
            operation = item[method]
            for name in operation.get("security", []):
                assert set(name) <= set(schemes), (path, method, name)
            refusals = [code for code in operation["responses"] if code.startswith("4")]
            assert refusals, (path, method)
            for code in refusals:
                schema = operation["responses"][code]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/Error"}


# ---------------------------------------------------------------- the fuzzer


class FuzzApi:
    """`liveshow serve` in its own process (tests/fuzzkit.py: ServerProcess) on its own SQLite copy: a
    seller with an API token and a live show, a viewer with a token, and a second seller whose show the
    health check uses. `app` is the same app built here and never started, for its route table."""

    def __init__(self, tmp: Path, sqlite_template: Path) -> None:
        db_path = tmp / "liveshow.db"
        db_path.write_bytes(sqlite_template.read_bytes())
        self.server = ServerProcess(tmp, f"sqlite:///{db_path}")
        self.settings = self.server.settings
        self.app = create_app(self.settings)
        self.client = httpx2.Client(base_url=self.server.url, timeout=30)
        self.db = Database(self.settings.database_url)
        self.world: World = make_world(self.db, viewers=2, quantities=(1, 5))
        self.health: World = make_world(self.db, viewers=1, quantities=(100_000,))
        with self.db.session() as session:
            self.tokens = {
                "seller": issue_token(session, self.world.seller),
                "viewer": issue_token(session, self.world.viewers[0]),
            }

    def close(self) -> None:
        self.client.close()
        self.server.stop()
        self.app.state.ctx.db.close()
        self.db.close()


def valid_bodies(env: FuzzApi) -> dict[tuple[str, str], dict[str, Any]]:
    """A valid JSON body per operation that takes one (the seeds the fuzzer mutates)."""
    w = env.world
    listing = w.listings[1].id
    return {
        ("/api/shows", "post"): {"title": "Friday drop", "description": "Denim", "visibility": "public"},
        ("/api/shows/{show_id}/lineup", "put"): {"listing_ids": [listing]},
        ("/api/shows/{show_id}/auction", "post"): {"type": "claim", "key": "k-" + secrets.token_hex(6)},
        ("/api/shows/{show_id}/reair", "post"): {"title": "Again"},
        ("/api/shows/{show_id}/giveaways", "post"): {"listing_id": listing},
        ("/api/listings", "post"): {"title": "Coat", "price_cents": 2500, "quantity": 1, "size": "M"},
        ("/api/listings/{listing_id}", "patch"): {"price_cents": 2600},
        ("/api/listings/{listing_id}/like", "post"): {"liked": True},
        ("/api/listings/{listing_id}/offers", "post"): {"price_cents": 1000, "minutes": 60},
        ("/api/sellers/{username}/follow", "post"): {"following": True},
        ("/api/notices/read", "post"): {"ids": [1]},
        ("/api/notices/preferences", "post"): {"preferences": {"offer": False}},
        ("/api/notices/preferences", "put"): {"preferences": {"offer": True}},
        ("/api/push/subscriptions", "post"): {
            "endpoint": "https://push.example.com/x",
            "keys": {"p256dh": "B" * 87, "auth": "A" * 22},
        },
        ("/api/push/subscriptions", "delete"): {"endpoint": "https://push.example.com/x"},
    }


def json_operations() -> list[tuple[str, str]]:
    """Every documented operation whose body is JSON: the fuzzer's list comes from the document."""
    ops: list[tuple[str, str]] = []
    for path, item in openapi.document()["paths"].items():
        for method, operation in item.items():
            if method in METHODS and "application/json" in operation.get("requestBody", {}).get(
                "content", {}
            ):
                ops.append((path, method))
    return sorted(ops)


def other_operations() -> list[tuple[str, str]]:
    """The rest (GETs, bodiless POSTs, WHIP/WHEP, photos): fuzzed through path, query and raw body."""
    ops = []
    for path, item in openapi.document()["paths"].items():
        for method in item:
            if method in METHODS and (path, method) not in json_operations() and path != "/openapi.json":
                ops.append((path, method))
    return sorted(ops)


def test_every_json_operation_has_a_seed(served: FuzzApi) -> None:
    assert sorted(valid_bodies(served)) == json_operations()


def path_values(env: FuzzApi, name: str) -> st.SearchStrategy[str]:
    w = env.world
    known = {
        "show_id": [w.show_id],
        "listing_id": [x.id for x in w.listings],
        "username": [w.seller.username, w.viewers[0].username],
    }.get(name, [1])
    hostile = st.one_of(
        st.integers(-(10**30), 10**30).map(str),
        st.sampled_from(["0", "9223372036854775807", "9223372036854775808", "1" * 40, "-1", "1.5", "1e3"]),
        texts.filter(lambda t: 0 < len(t) < 300).map(lambda t: quote(t, safe="")),
    )
    return st.one_of(st.sampled_from([str(k) for k in known]), hostile)


@st.composite
def requests(draw: st.DrawFn, env: FuzzApi, seeds: dict[tuple[str, str], dict[str, Any]]) -> dict[str, Any]:
    path, method = draw(st.sampled_from(json_operations() + other_operations()))
    url = path
    for name in re.findall(r"{(\w+)}", path):
        url = url.replace("{" + name + "}", draw(path_values(env, name)))
    seed = seeds.get((path, method))
    body_value = draw(
        st.one_of(mutated(seed), json_values) if seed is not None else st.one_of(st.none(), json_values)
    )
    content = b"" if body_value is None else dumps(body_value).encode("utf-8")
    if draw(st.integers(0, 9)) == 0:
        content = draw(st.binary(max_size=300))
    ctype = draw(
        st.sampled_from(
            ["application/json"] * 6
            + ["application/json; charset=utf-8", "text/plain", "application/sdp", "image/png", ""]
        )
    )
    who = draw(st.sampled_from(["seller", "seller", "viewer", "cookie", "cookie-no-csrf", "none", "garbage"]))
    headers = {"accept": "application/json"}
    if ctype:
        headers["content-type"] = ctype
    if who in env.tokens:
        headers["authorization"] = f"Bearer {env.tokens[who]}"
    elif who.startswith("cookie"):
        # The seller's browser session; session_cookie() signs the CSRF token "t" into it.
        headers["cookie"] = f"liveshow_session={session_cookie(env.settings, env.world.seller)}"
        if who == "cookie":
            headers["x-csrf-token"] = "t"
    elif who == "garbage":
        headers["authorization"] = "Bearer " + draw(st.text("abc_-=.~+/", min_size=1, max_size=300))
    query = ""
    if method == "get" and draw(st.booleans()):
        query = "?" + "&".join(
            f"{quote(k, safe='')}={quote(v, safe='')}"
            for k, v in draw(
                st.dictionaries(
                    st.sampled_from(["q", "seller", "after", "limit", "scope", "t"]), short_text, max_size=3
                )
            ).items()
        )
    return {"method": method.upper(), "url": url + query, "content": content, "headers": headers}


def check_response(request: dict[str, Any], status: int, headers: Any, body: bytes) -> None:
    described = f"{request['method']} {request['url'][:200]} body={request['content'][:200]!r} -> {status}"
    assert status < 500, f"server error: {described} {body[:300]!r}"
    if status >= 400 and request["url"].startswith("/api/"):
        assert headers.get("content-type", "").startswith("application/json"), described
        error = json.loads(body)
        assert isinstance(error.get("error"), str) and error["error"], described
        assert isinstance(error.get("reason"), str) and error["reason"], described


def check_healthy(env: FuzzApi) -> None:
    """/healthz and /readyz answer 200; on a show the fuzzer's users do not own, a room still answers a
    ping, a viewer's chat message goes through and so does a claim."""
    client = env.client
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200, client.get("/readyz").text
    h = env.health
    host = SyncPeer(env.server.url, h.show_id, session_cookie(env.settings, h.seller))
    try:
        opened = host.request(
            {"type": "lot.open", "listing_id": h.listings[0].id, "mode": "claim", "quantity": 10}
        )
        assert opened.get("ok") is True, opened
    finally:
        host.close()
    buyer = SyncPeer(env.server.url, h.show_id, session_cookie(env.settings, h.viewers[0]))
    try:
        assert buyer.request({"type": "ping"})["type"] == "pong"
        assert buyer.request({"type": "chat.send", "text": "still here"})["type"] == "chat.sent"
        claimed = buyer.request({"type": "claim", "key": "k-" + secrets.token_hex(8)})
        assert claimed["type"] == "claim.result" and claimed["ok"] is True, claimed
    finally:
        buyer.close()


def test_api_answers_hostile_requests_and_stays_healthy(served: FuzzApi) -> None:
    seeds = valid_bodies(served)

    @FUZZ_SETTINGS
    @given(requests(served, seeds))
    def fuzz(request: dict[str, Any]) -> None:
        served.client.cookies.clear()  # only the credentials this example chose
        resp = served.client.request(
            request["method"], request["url"], content=request["content"], headers=request["headers"]
        )
        check_response(request, resp.status_code, resp.headers, resp.content)

    fuzz()
    check_healthy(served)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("PATCH", "/api/listings/-1", 404, "not_found"),
        ("GET", "/api/no-such-thing", 404, "not_found"),
        ("DELETE", "/api/shows", 405, "method_not_allowed"),
        ("GET", "/whip/1", 405, "method_not_allowed"),
    ],
)
def test_api_paths_the_router_refuses_answer_the_error_shape(
    served: FuzzApi, method: str, path: str, status: int, code: str
) -> None:
    """Found by the fuzzer: a path no API route matches, or a method it does not take, was answered by
    Starlette in plain text, where an API client reads {error, reason} as for every other refusal."""
    resp = served.client.request(method, path)
    assert resp.status_code == status
    assert resp.headers["content-type"].startswith("application/json"), resp.text
    assert resp.json()["error"] == code and resp.json()["reason"]
    if status == 405:
        assert resp.headers["allow"]


BEYOND_64_BITS = "9223372036854775808"  # 2**63: no BIGINT column holds it


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/api/listings/{BEYOND_64_BITS}"),
        ("PATCH", f"/api/listings/{BEYOND_64_BITS}"),
        ("DELETE", f"/api/listings/{BEYOND_64_BITS}"),
        ("GET", f"/api/shows/{BEYOND_64_BITS}"),
        ("POST", f"/api/shows/{BEYOND_64_BITS}/end"),
        ("GET", f"/api/shows/{BEYOND_64_BITS}/media"),
        ("POST", f"/api/shows/{BEYOND_64_BITS}/auction"),
        ("GET", f"/api/shows/{BEYOND_64_BITS}/timeline"),
        ("GET", "/api/shows/" + "1" * 40),
    ],
)
def test_ids_beyond_64_bits_in_the_path_are_not_found(served: FuzzApi, method: str, path: str) -> None:
    """Found by the fuzzer: an {id:int} path beyond 64 bits reached the database and failed there
    (OverflowError on SQLite), answered 500; no such row can exist, so it is a 404."""
    headers = {"authorization": f"Bearer {served.tokens['seller']}", "content-type": "application/json"}
    resp = served.client.request(method, path, content=b'{"type": "lot.state"}', headers=headers)
    assert resp.status_code == 404, resp.text
    assert resp.json()["error"] == "not_found"


DEEP = b"[" * 5000 + b"]" * 5000


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/shows", DEEP),
        ("POST", "/api/listings", b'{"title": ' + DEEP + b"}"),
        ("POST", "/api/notices/read", DEEP),
        ("POST", "/api/shows/1/auction", b'{"type": "bid", "max_cents": ' + DEEP + b"}"),
        ("POST", "/api/notices/read", b'{"ids": [9223372036854775808]}'),  # found by the fuzzer: was a 500
        ("GET", "/api/notices?after=9223372036854775808", b""),  # found by the fuzzer: was a 500
        ("PUT", "/api/shows/1/lineup", b'{"listing_ids": [9223372036854775808]}'),
        ("POST", "/api/listings/1/like", b'{"liked": NaN}'),
        ("POST", "/api/listings", b'{"title": "Coat", "price_cents": Infinity}'),
        ("POST", "/api/listings", b'{"title": "Coat", "price_cents": 1e400}'),
        ("POST", "/api/listings", b'{"title": "Coat", "quantity": ' + b"9" * 4000 + b"}"),
    ],
)
def test_api_refuses_hostile_bodies_with_a_4xx(served: FuzzApi, method: str, path: str, body: bytes) -> None:
    """Bodies a JSON library would not write: refused with a 4xx and {error, reason}, never a 500."""
    headers = {"authorization": f"Bearer {served.tokens['seller']}", "content-type": "application/json"}
    request = {"method": method, "url": path, "content": body, "headers": headers}
    resp = served.client.request(method, path, content=body, headers=headers)
    check_response(request, resp.status_code, resp.headers, resp.content)
    assert 400 <= resp.status_code < 500


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/shows", b'{"title": "x\\ud800"}'),
        ("/api/listings", b'{"title": "x\\udfff", "price_cents": 100}'),
    ],
)
def test_lone_surrogates_never_reach_the_database(served: FuzzApi, path: str, body: bytes) -> None:
    """Found by the fuzzer: a lone surrogate escape in a title reached the database and failed there
    (UnicodeEncodeError, a 500). Now it is cleaned away (201) or refused (4xx)."""
    headers = {"authorization": f"Bearer {served.tokens['seller']}", "content-type": "application/json"}
    resp = served.client.post(path, content=body, headers=headers)
    check_response(
        {"method": "POST", "url": path, "content": body}, resp.status_code, resp.headers, resp.content
    )
    if resp.status_code == 201:
        assert "\ud800" not in resp.json()["title"] and "\udfff" not in resp.json()["title"]
