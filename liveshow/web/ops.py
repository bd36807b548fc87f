"""Operations endpoints: liveness, readiness, Prometheus metrics, the OpenAPI description."""

from __future__ import annotations

import hmac
import ipaddress

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

from liveshow import openapi
from liveshow.jsonwire import dumps
from liveshow.web.auth import bearer_token, ctx


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def readyz(request: Request) -> Response:
    context = ctx(request)
    checks = {"database": await run_in_threadpool(context.db.ping), "bus": await context.bus.ping()}
    ready = all(checks.values())
    return JSONResponse({"ready": ready, **checks}, status_code=200 if ready else 503)


FORWARDED_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def may_scrape(request: Request, token: str) -> bool:
    """With a configured token, only a request bearing it. Without one, only a loopback client that no
    proxy forwarded: a reverse proxy on the same host connects from loopback on everyone's behalf, and
    says so in X-Forwarded-For or Forwarded (uvicorn may have already moved that address into client)."""
    if token:
        sent = bearer_token(request)
        return sent is not None and hmac.compare_digest(sent.encode(), token.encode())
    if any(name in request.headers for name in FORWARDED_HEADERS):
        return False
    host = request.client.host if request.client else ""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def metrics(request: Request) -> Response:
    if not may_scrape(request, ctx(request).settings.metrics_token):
        reason = "Send Authorization: Bearer <LIVESHOW_METRICS_TOKEN> (with none set: loopback clients only)."
        return JSONResponse(
            {"error": "not_authenticated", "reason": reason},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    return Response(ctx(request).metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


def make_openapi() -> Route:
    body = dumps(openapi.document())  # built once: the document is static

    async def openapi_json(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return Route("/openapi.json", openapi_json)


def routes() -> list[BaseRoute]:
    return [
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Route("/metrics", metrics),
        make_openapi(),
    ]
