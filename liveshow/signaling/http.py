"""The HTTP side of WHIP/WHEP and the show's media API; handlers only translate.

WHIP ``POST /whip/{show_id}`` (Bearer stream key) and WHEP ``POST /whep/{show_id}`` take an SDP offer
and answer ``201`` with the answer SDP, a ``Location`` naming the session (an unguessable token) and
``Link: <url>; rel="ice-server"`` for each configured STUN/TURN server (with its credentials; the
pages read them from ``OPTIONS`` before they make their peer). ``PATCH`` on the session takes
``application/trickle-ice-sdpfrag`` candidates (204); an ICE restart is refused with 422 (RFC 9725
4.3.2: re-POST instead, the show resumes within the grace period). ``DELETE`` ends the session.
Every response carries CORS headers so OBS-style and browser clients on other origins work.
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from collections.abc import Awaitable, Callable

from aiortc.sdp import candidate_from_sdp
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow.errors import DomainError, NotAuthenticated, NotFound
from liveshow.jsonbody import read_limited
from liveshow.media import edgeauth
from liveshow.media import iceservers as ice_servers
from liveshow.media.errors import BadSdp, IceRestartUnsupported, ServedElsewhere
from liveshow.media.service import REDIRECTED, MediaService
from liveshow.ratelimit import retry_after_header
from liveshow.settings import Settings
from liveshow.signaling import sdp
from liveshow.signaling.caps import WhepCaps
from liveshow.web.auth import bearer_token, check_csrf, ctx, current_user_async

log = logging.getLogger(__name__)

CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, PATCH, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, Link, ETag, Accept-Patch, Accept-Post",
    "Access-Control-Max-Age": "86400",
}
FRAG_TYPE = "application/trickle-ice-sdpfrag"
Handler = Callable[[Request], Awaitable[Response]]


def media(request: Request) -> MediaService:
    service = ctx(request).media
    assert service is not None
    return service


def with_cors(handler: Handler) -> Handler:
    """Errors too must carry CORS headers, or a browser on another origin cannot read the reason."""

    async def wrapped(request: Request) -> Response:
        try:
            response = await handler(request)
        except DomainError as exc:
            log.info("refused %s %s: %s (%s)", request.method, request.url.path, exc.message, exc.code)
            response = JSONResponse(
                {"error": exc.code, "reason": exc.message, **exc.details},
                status_code=exc.status,
                headers=retry_after_header(exc.details),
            )
        response.headers.update(CORS)
        return response

    return wrapped


def show_id_of(request: Request) -> int:
    return int(request.path_params["show_id"])


async def read_offer(request: Request) -> bytes:
    sdp.check_content_type(request.headers.get("content-type"))
    return await read_limited(request, sdp.MAX_SDP_BYTES)


def ice_links(request: Request) -> dict[str, str]:
    # Time-limited TURN credentials are minted per response: each session (and each page's OPTIONS
    # before it makes its peer) gets its own, named by a random user.
    servers = media(request).ice_servers.for_session(time.time(), secrets.token_hex(8))
    return {"Link": ice_servers.link_header(servers)} if servers else {}


def created(request: Request, prefix: str, session_id: str, answer: str) -> Response:
    headers = {
        "Location": f"/{prefix}/{show_id_of(request)}/{session_id}",
        "Accept-Patch": FRAG_TYPE,
        "ETag": f'"{session_id[:12]}"',
        **ice_links(request),
    }
    return Response(answer, status_code=201, media_type="application/sdp", headers=headers)


async def options(request: Request) -> Response:
    return Response(status_code=204, headers={"Accept-Post": "application/sdp", **ice_links(request)})


async def whip_post(request: Request) -> Response:
    show_id = show_id_of(request)
    key = bearer_token(request)
    if key is None:
        raise NotAuthenticated("Send the stream key as Authorization: Bearer <key>.")
    await limit(request, "whip.address")
    # The key first: a caller without it costs a lookup, and never makes us read or parse an offer.
    await media(request).check_stream_key(show_id, key)
    body = await read_offer(request)
    kinds = sdp.validate_offer(body, sending=True)
    session_id, answer = await media(request).publish(show_id, key, body.decode(), kinds)
    return created(request, "whip", session_id, answer)


async def whep_post(request: Request, caps: WhepCaps) -> Response:
    show_id = show_id_of(request)
    token = request.headers.get(edgeauth.HEADER)
    if token is not None:
        return await edge_pull(request, show_id, token)
    address = await limit(request, "whep.address")
    if REDIRECTED not in request.query_params:
        # No headroom here: to a process that has some (its load record says so), which serves the
        # show as an edge; 307 keeps the method and the offer.
        elsewhere = await media(request).room_elsewhere(show_id)
        if elsewhere is not None:
            return Response(status_code=307, headers={"Location": elsewhere})
    media(request).refuse_if_full(show_id)  # 503 before the offer is read or parsed
    body = await read_offer(request)
    kinds = sdp.validate_offer(body, sending=False)
    user = await current_user_async(request)
    with caps.slot(show_id, address, viewer_alive(media(request), show_id)) as slot:
        try:
            session_id, answer = await media(request).watch(
                show_id, body.decode(), kinds, user.id if user else None
            )
        except ServedElsewhere as moved:
            # Another server process holds the show's publisher: 307 keeps the method and the offer
            # (RFC 9725 section 4.5), so WHEP clients and fetch() re-POST there.
            return Response(status_code=307, headers={"Location": moved.url})
        slot.confirm(session_id)
    return created(request, "whep", session_id, answer)


async def edge_pull(request: Request, show_id: int, token: str) -> Response:
    """Another process of the cluster pulls the show to relay it (liveshow.media.edgeauth): one
    session per edge, so neither the per-address caps nor the WHEP rate limit (meant for browsers) apply;
    a wrong token is a 401 before the offer is read, and counts against the address's WHEP limit (so
    the header is no way around it)."""
    service = media(request)
    if not service.pull_allowed(show_id, token):
        await limit(request, "whep.address")
        raise NotAuthenticated("Wrong edge pull token.")
    body = await read_offer(request)
    kinds = sdp.validate_offer(body, sending=False)
    try:
        session_id, answer = await service.watch(show_id, body.decode(), kinds, None, pull=True)
    except ServedElsewhere as moved:
        return Response(status_code=307, headers={"Location": moved.url})
    return created(request, "whep", session_id, answer)


async def limit(request: Request, rule: str) -> str:
    """Count this request against ``rule`` for its client address (429 when over); the address."""
    limits = ctx(request).limits
    assert limits is not None
    address = limits.address(request)
    await limits.check(rule, address)
    return address


def viewer_alive(service: MediaService, show_id: int) -> Callable[[str], bool]:
    def alive(session_id: str) -> bool:
        try:
            service.viewer(show_id, session_id)
        except NotFound:
            return False
        return True

    return alive


async def patch_session(request: Request) -> Response:
    sdp.check_content_type(request.headers.get("content-type"), FRAG_TYPE)
    show_id, session_id = show_id_of(request), request.path_params["session_id"]
    service = media(request)
    # The session's unguessable id is its credential: an unknown one is a 404 before the body is read.
    if request.url.path.startswith("/whip/"):
        pc = service.publisher(show_id, session_id).pc
    else:
        pc = service.viewer(show_id, session_id).pc
    body = await read_limited(request, sdp.MAX_SDP_BYTES)
    ufrag, _pwd, candidates = sdp.parse_sdpfrag(body)
    remote = pc.remoteDescription
    current = remote.sdp if remote is not None else ""
    if ufrag is not None and f"a=ice-ufrag:{ufrag}" not in current:
        raise IceRestartUnsupported("ICE restart is not supported: POST a new offer to republish.")
    first_mid = pc.getTransceivers()[0].mid if pc.getTransceivers() else "0"
    for mid, line in candidates:
        try:
            candidate = candidate_from_sdp(line.split(":", 1)[1])
        except Exception as exc:
            raise BadSdp(f"Malformed candidate: {line[:80]}") from exc
        candidate.sdpMid = mid or first_mid
        await pc.addIceCandidate(candidate)
    return Response(status_code=204)


async def delete_session(request: Request) -> Response:
    show_id, session_id = show_id_of(request), request.path_params["session_id"]
    if request.url.path.startswith("/whip/"):
        await media(request).delete_publisher(show_id, session_id)
    else:
        await media(request).delete_viewer(show_id, session_id)
    return Response(status_code=200)


async def end_show(request: Request) -> Response:
    """POST /api/shows/{show_id}/end: the seller (session + CSRF header, or Bearer API token)."""
    user = await current_user_async(request)
    if user is None or user.id is None:
        raise NotAuthenticated("Sign in first.")
    await check_csrf(request)
    show_id = show_id_of(request)
    await media(request).end_by_seller(show_id, user.id)
    return JSONResponse({"id": show_id, "state": "ended"})


async def media_status(request: Request) -> Response:
    """GET /api/shows/{show_id}/media: what a player needs to pick its state, and the viewer count."""
    show_id = show_id_of(request)
    service = media(request)
    show = await service.require_show(show_id)
    user = await current_user_async(request)
    if show.visibility == "private" and (user is None or user.id != show.seller_id):
        raise NotFound("No such show.")
    state = service.state(show_id) or show.state
    return JSONResponse({"id": show_id, "state": state, "viewers": service.viewer_count(show_id)})


def routes(settings: Settings) -> list[BaseRoute]:
    session_methods = ["PATCH", "DELETE", "OPTIONS"]
    caps = WhepCaps(settings.max_whep_per_show, settings.max_whep_per_address)
    return [
        Route("/whip/{show_id:int}", with_cors(whip_post), methods=["POST"]),
        Route("/whip/{show_id:int}", with_cors(options), methods=["OPTIONS"]),
        Route("/whep/{show_id:int}", with_cors(functools.partial(whep_post, caps=caps)), methods=["POST"]),
        Route("/whep/{show_id:int}", with_cors(options), methods=["OPTIONS"]),
        Route("/whip/{show_id:int}/{session_id}", with_cors(session_dispatch), methods=session_methods),
        Route("/whep/{show_id:int}/{session_id}", with_cors(session_dispatch), methods=session_methods),
        Route("/api/shows/{show_id:int}/end", end_show, methods=["POST"]),
        Route("/api/shows/{show_id:int}/media", media_status, methods=["GET"]),
    ]


async def session_dispatch(request: Request) -> Response:
    if request.method == "PATCH":
        return await patch_session(request)
    if request.method == "DELETE":
        return await delete_session(request)
    return Response(status_code=204, headers={"Accept-Patch": FRAG_TYPE})
