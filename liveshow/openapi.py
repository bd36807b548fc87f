"""The OpenAPI 3.1 description of the public HTTP API, served at /openapi.json.

Written by hand, not generated from the handlers (they read their bodies themselves): the test
tests/test_fuzz_api.py keeps it honest by checking that every route under /api/, /whip/, /whep/ and the
operations endpoints is documented with its methods and that every documented path exists, and the
HTTP fuzzer takes its list of JSON endpoints from it, so integrators and the fuzzer read one source."""

from __future__ import annotations

import re
from typing import Any

JSON = "application/json"
Schema = dict[str, Any]

# ---------------------------------------------------------------- building blocks

Security = dict[str, list[str]]
# The session cookie, and the X-CSRF-Token header when changing state.
SESSION: Security = {"session": [], "csrf": []}
BEARER: Security = {"apiToken": []}
STREAM_KEY: Security = {"streamKey": []}
ANYONE: Security = {}


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _error(description: str) -> Schema:
    return {"description": description, "content": {JSON: {"schema": _ref("Error")}}}


def _obj(required: tuple[str, ...] = (), **props: Schema) -> Schema:
    schema: Schema = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    return schema


def _int(low: int | None = None, high: int | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "integer", **extra}
    if low is not None:
        schema["minimum"] = low
    if high is not None:
        schema["maximum"] = high
    return schema


def _str(max_length: int | None = None, **extra: Any) -> Schema:
    schema: Schema = {"type": "string", **extra}
    if max_length is not None:
        schema["maxLength"] = max_length
    return schema


BOOL: Schema = {"type": "boolean"}


def op(
    summary: str,
    *,
    auth: list[dict[str, list[str]]],
    body: Schema | None = None,
    body_type: str = JSON,
    body_required: bool = True,
    ok: int = 200,
    ok_type: str = JSON,
    errors: tuple[int, ...] = (),
    query: dict[str, Schema] | None = None,
) -> dict[str, Any]:
    """One operation. Every refusal answers the Error shape (a JSON body when the client asks for JSON,
    as API clients do)."""
    responses: dict[str, Any] = {str(ok): {"description": "Success", "content": {ok_type: {"schema": {}}}}}
    if ok == 204:
        responses["204"] = {"description": "Done; no body"}
    standard = {
        400: "Invalid input: a field has the wrong type, is out of range or missing",
        401: "Not signed in, or the token is wrong",
        403: "Signed in, but not allowed (another seller's show, or the CSRF header is missing)",
        404: "No such resource",
        409: "Conflicts with the current state",
        413: "The body is too large",
        415: "The body's Content-Type is not the one expected",
        429: "Too many requests; see Retry-After",
        503: "A dependency (database or bus) is down; see Retry-After",
    }
    codes = sorted({400, 503, *errors} | ({401, 403} if auth != [ANYONE] else set()))
    for code in codes:
        responses[str(code)] = _error(standard[code])
    operation: dict[str, Any] = {"summary": summary, "security": auth, "responses": responses}
    if query:
        operation["parameters"] = [
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in query.items()
        ]
    if body is not None:
        operation["requestBody"] = {"required": body_required, "content": {body_type: {"schema": body}}}
    return operation


SELLER_API = [SESSION, BEARER]
SIGNED_IN = [SESSION, BEARER]
OPTIONAL = [ANYONE, SESSION, BEARER]

SHOW_BODY = _obj(
    ("title",),
    title=_str(120),
    description=_str(2000),
    starts_at=_str(description="ISO 8601 date and time; empty or absent: now"),
    visibility={"enum": ["public", "unlisted", "private"]},
    listing_ids={"type": "array", "items": _int(1)},
)
LISTING_BODY = _obj(
    ("title",),
    title=_str(120),
    description=_str(4000),
    brand=_str(60),
    size=_str(20),
    condition=_str(),
    category=_str(),
    price_cents=_int(1, description="Integer cents; or `price` as dollars text"),
    price=_str(),
    quantity=_int(1),
)
AUCTION_COMMAND = _obj(
    ("type",),
    type={"enum": ["claim", "bid", "lot.state", "lot.open", "lot.close", "lot.next", "lot.cancel"]},
    key=_str(80, description="Idempotency key of a claim or bid: 8 to 80 of letters, digits, -_.:"),
    quantity=_int(1),
    max_cents=_int(1, description="A bid's maximum (a proxy bid), integer cents"),
    lot_no=_int(1),
    listing_id=_int(1),
    mode={"enum": ["claim", "auction"]},
    price_cents=_int(1),
    per_buyer_limit=_int(1),
    start_cents=_int(1),
    duration_s=_int(1),
    sudden_death=BOOL,
)

SHOW_ID = "{show_id}"


def _paths() -> dict[str, dict[str, Any]]:
    sdp = "application/sdp"
    # A session's URL (the Location of the 201) is its capability: PATCH and DELETE need nothing more.
    session_ops = {
        "patch": op(
            "Trickle ICE candidates (application/trickle-ice-sdpfrag); an ICE restart is refused",
            auth=[ANYONE],
            body=_str(),
            body_type="application/trickle-ice-sdpfrag",
            ok=204,
            errors=(404, 409, 413, 415),
        ),
        "delete": op("End the session (stop publishing or watching)", auth=[ANYONE], ok=200, errors=(404,)),
        "options": op("CORS preflight", auth=[ANYONE], ok=204),
    }
    whep_post = op(
        "Watch (WHEP): an SDP offer, answered with an SDP answer and a Location",
        auth=OPTIONAL,
        body=_str(),
        body_type=sdp,
        ok=201,
        ok_type=sdp,
        errors=(404, 409, 413, 415, 429),
    )
    whep_post["responses"]["307"] = {
        "description": "Another server process holds the show: POST the same offer to Location"
    }
    hls_playlist = op(
        "The show's LL-HLS media playlist (fMP4 parts, H.264 shows only). With _HLS_msn (and _HLS_part)"
        " a blocking reload: answered once that segment (part) exists, up to 6 s",
        auth=[ANYONE],
        ok_type="application/vnd.apple.mpegurl",
        errors=(404, 409),
        query={"_HLS_msn": _int(0), "_HLS_part": _int(0)},
    )
    hls_media = op(
        "An init segment (init-N.mp4), segment (MSN.m4s) or part (MSN.PART.m4s) of the playlist;"
        " immutable: its URL names the stream it belongs to",
        auth=[ANYONE],
        ok_type="video/mp4",
        errors=(404, 409),
    )
    for hls in (hls_playlist, hls_media):
        hls["responses"]["307"] = {"description": "Another server process holds the show: GET Location"}
    return {
        "/healthz": {"get": op("Liveness", auth=[ANYONE], ok_type="text/plain")},
        "/readyz": {"get": op("Readiness: database and bus reachable", auth=[ANYONE])},
        "/metrics": {"get": op("Prometheus metrics", auth=[ANYONE], ok_type="text/plain")},
        "/openapi.json": {"get": op("This document", auth=[ANYONE])},
        "/api/shows": {
            "post": op("Create a show", auth=SELLER_API, body=SHOW_BODY, ok=201, errors=(413, 415))
        },
        f"/api/shows/{SHOW_ID}": {"get": op("A show", auth=OPTIONAL, errors=(404,))},
        f"/api/shows/{SHOW_ID}/lineup": {
            "put": op(
                "Replace the show's lineup",
                auth=SELLER_API,
                body=_obj(("listing_ids",), listing_ids={"type": "array", "items": _int(1)}),
                errors=(404, 409, 413, 415),
            )
        },
        f"/api/shows/{SHOW_ID}/end": {"post": op("End the show", auth=SELLER_API, errors=(404,))},
        f"/api/shows/{SHOW_ID}/media": {
            "get": op("Media state and viewer count", auth=OPTIONAL, errors=(404,))
        },
        f"/api/shows/{SHOW_ID}/auction": {
            "post": op(
                "A claim, bid or lot command (the room message, over HTTP)",
                auth=SELLER_API,
                body=AUCTION_COMMAND,
                errors=(404, 409, 413, 429),
            )
        },
        f"/api/shows/{SHOW_ID}/timeline": {"get": op("The replay's timeline", auth=OPTIONAL, errors=(404,))},
        f"/api/shows/{SHOW_ID}/recording": {
            "delete": op("Delete the show's recording", auth=SELLER_API, errors=(404,))
        },
        f"/api/shows/{SHOW_ID}/reair": {
            "post": op(
                "Schedule a re-air of the recording",
                auth=SELLER_API,
                body=_obj(title=_str(120), starts_at=_str()),
                body_required=False,
                ok=201,
                errors=(404, 409),
            )
        },
        f"/api/shows/{SHOW_ID}/shared": {
            "post": op("Record that the seller shared the show", auth=SIGNED_IN)
        },
        f"/api/shows/{SHOW_ID}/giveaways": {
            "post": op(
                "Start a giveaway of a listing",
                auth=SELLER_API,
                body=_obj(("listing_id",), listing_id=_int(1, 2**31 - 1)),
                ok=201,
                errors=(404, 409, 413, 415),
            )
        },
        f"/api/shows/{SHOW_ID}/events": {
            "get": op(
                "The show's durable event log, page by page (a client resumes after a long gap)",
                auth=OPTIONAL,
                query={"after_seq": _int(0), "limit": _int(1, 1000)},
                errors=(404,),
            )
        },
        "/api/orders": {
            "get": op(
                "My orders as buyer or seller, newest first, page by page",
                auth=SIGNED_IN,
                query={"role": {"enum": ["buyer", "seller"]}, "limit": _int(1), "before": _int(1)},
            )
        },
        f"/api/shows/{SHOW_ID}/analytics": {"get": op("The show's numbers", auth=SELLER_API, errors=(404,))},
        "/api/giveaways/{giveaway_id}/draw": {
            "post": op("Draw the giveaway's winner", auth=SELLER_API, errors=(404, 409))
        },
        "/api/listings": {
            "get": op(
                "A seller's listings (default: the caller's own)",
                auth=OPTIONAL,
                query={"seller": _str()},
                errors=(404,),
            ),
            "post": op("Create a listing", auth=SELLER_API, body=LISTING_BODY, ok=201, errors=(413, 415)),
        },
        "/api/listings/{listing_id}": {
            "get": op("A listing", auth=OPTIONAL, errors=(404,)),
            "patch": op(
                "Change a listing (only the fields sent)",
                auth=SELLER_API,
                body={**LISTING_BODY, "required": []},
                errors=(404, 413, 415),
            ),
            "delete": op("Delete a listing", auth=SELLER_API, ok=204, errors=(404, 409)),
        },
        "/api/listings/{listing_id}/photos": {
            "post": op(
                "Add a photo (the raw image is the body)",
                auth=SELLER_API,
                body={"type": "string", "contentMediaType": "image/*"},
                body_type="image/*",
                ok=201,
                errors=(404, 413, 415),
            )
        },
        "/api/listings/{listing_id}/like": {
            "post": op(
                "Like, unlike or toggle", auth=SIGNED_IN, body=_obj(liked=BOOL), errors=(404, 413, 415)
            )
        },
        "/api/listings/{listing_id}/likes": {"get": op("Like count and whether I like it", auth=OPTIONAL)},
        "/api/listings/{listing_id}/likers": {"get": op("Who liked it (its seller)", auth=SIGNED_IN)},
        "/api/listings/{listing_id}/similar": {
            "get": op("Similar listings", auth=OPTIONAL, query={"limit": _int(1)}, errors=(404,))
        },
        "/api/listings/{listing_id}/share-card.png": {
            "get": op("Share card of a sold listing", auth=SIGNED_IN, ok_type="image/png", errors=(404,))
        },
        "/api/listings/{listing_id}/offers": {
            "get": op("Offers made on a listing (its seller)", auth=SIGNED_IN, errors=(404,)),
            "post": op(
                "Offer the listing to its likers",
                auth=SIGNED_IN,
                body=_obj(
                    ("price_cents", "minutes"),
                    price_cents=_int(1, 100_000_000),
                    minutes=_int(1),
                    to={"type": "array", "items": _int(1)},
                ),
                ok=201,
                errors=(404, 409, 413, 415),
            ),
        },
        "/api/offers": {"get": op("Offers made to me", auth=SIGNED_IN)},
        "/api/offers/{offer_id}/accept": {"post": op("Accept an offer", auth=SIGNED_IN, errors=(404, 409))},
        "/api/sellers/{username}/follow": {
            "post": op(
                "Follow, unfollow or toggle",
                auth=SIGNED_IN,
                body=_obj(following=BOOL),
                errors=(404, 413, 415),
            )
        },
        "/api/sellers/{username}/followers": {"get": op("Follower count", auth=OPTIONAL, errors=(404,))},
        "/api/notices": {"get": op("My notifications", auth=SIGNED_IN, query={"after": _int(0)})},
        "/api/notices/read": {
            "post": op(
                "Mark notifications read (all, or the ids given)",
                auth=SIGNED_IN,
                body=_obj(ids={"type": "array", "items": _int(1)}),
                body_required=False,
                errors=(413, 415),
            )
        },
        "/api/notices/preferences": {
            "get": op("My notification preferences", auth=SIGNED_IN),
            **{
                method: op(
                    "Change my notification preferences",
                    auth=SIGNED_IN,
                    body=_obj(("preferences",), preferences={"type": "object", "additionalProperties": BOOL}),
                    errors=(413, 415),
                )
                for method in ("post", "put")
            },
        },
        "/api/push/key": {"get": op("The server's VAPID public key", auth=[ANYONE])},
        "/api/push/subscriptions": {
            "post": op(
                "Subscribe this browser to Web Push",
                auth=SIGNED_IN,
                body=_obj(
                    ("endpoint", "keys"),
                    endpoint=_str(1000, format="uri"),
                    keys=_obj(("p256dh", "auth"), p256dh=_str(), auth=_str()),
                ),
                ok=201,
                errors=(413, 415),
            ),
            "delete": op(
                "Unsubscribe",
                auth=SIGNED_IN,
                body=_obj(("endpoint",), endpoint=_str(1000)),
                errors=(413, 415),
            ),
        },
        "/api/search": {
            "get": op(
                "Search listings, sellers and shows",
                auth=OPTIONAL,
                query={"q": _str(), "scope": _str(), "limit": _int(1)},
            )
        },
        "/api/sell/progress": {"get": op("Seller onboarding progress", auth=SIGNED_IN)},
        f"/whip/{SHOW_ID}": {
            "post": op(
                "Publish (WHIP, RFC 9725): an SDP offer, answered with an SDP answer and a Location",
                auth=[STREAM_KEY],
                body=_str(),
                body_type=sdp,
                ok=201,
                ok_type=sdp,
                errors=(404, 409, 413, 415, 429),
            ),
            "options": op("CORS preflight", auth=[ANYONE], ok=204),
        },
        f"/whep/{SHOW_ID}": {
            "post": whep_post,
            "options": op("CORS preflight", auth=[ANYONE], ok=204),
        },
        f"/whip/{SHOW_ID}/{{session_id}}": session_ops,
        f"/whep/{SHOW_ID}/{{session_id}}": session_ops,
        f"/hls/{SHOW_ID}/live.m3u8": {"get": hls_playlist},
        f"/hls/{SHOW_ID}/{{key}}/{{name}}": {"get": hls_media},
    }


def _with_path_parameters(paths: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path, item in paths.items():
        names = re.findall(r"{(\w+)}", path)
        if names:
            item = {
                "parameters": [
                    {
                        "name": name,
                        "in": "path",
                        "required": True,
                        "schema": _str() if name in ("username", "session_id", "key", "name") else _int(1),
                    }
                    for name in names
                ],
                **item,
            }
        out[path] = item
    return out


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "liveshow",
            "version": "1",
            "description": (
                "The public HTTP API of a liveshow server. The show room is a WebSocket at "
                "/ws/shows/{show_id} (JSON frames with a `type`; see the README). Every refusal is a "
                "4xx (or 503 while a dependency is down) with a JSON body {error, reason}; limits and "
                "outages add Retry-After."
            ),
        },
        "paths": _with_path_parameters(_paths()),
        "components": {
            "securitySchemes": {
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "liveshow_session",
                    "description": "The browser's signed session cookie, set by /signin.",
                },
                "csrf": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-CSRF-Token",
                    "description": "With the session cookie, every state-changing request echoes the "
                    "page's csrf-token meta tag. Not needed with a Bearer API token.",
                },
                "apiToken": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API token from `liveshow token NAME` or the settings page.",
                },
                "streamKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "The show's stream key (WHIP only); checked before the body is read.",
                },
            },
            "schemas": {
                "Error": _obj(
                    ("error", "reason"),
                    error=_str(
                        description="A stable code: invalid, not_authenticated, forbidden, "
                        "not_found, conflict, too_large, unsupported_media_type, rate_limited, "
                        "unavailable"
                    ),
                    reason=_str(description="For people: what was wrong and what to do"),
                ),
            },
        },
    }
