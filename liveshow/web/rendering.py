"""Templates and error responses."""

from __future__ import annotations

import logging
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.templating import Jinja2Templates

from liveshow.context import WEB_DIR
from liveshow.errors import DomainError
from liveshow.ratelimit import retry_after_header
from liveshow.web.auth import csrf_token, ctx, current_user

log = logging.getLogger(__name__)


def make_templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(WEB_DIR / "templates"))
    templates.env.globals["csrf_token"] = csrf_token
    templates.env.filters["money"] = format_cents
    return templates


def format_cents(cents: int | None) -> str:
    if cents is None:
        return ""
    sign = "-" if cents < 0 else ""
    cents = abs(int(cents))
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    if "user" not in context:  # (not setdefault: that would ask the database even when given)
        context["user"] = current_user(request)
    return ctx(request).templates.TemplateResponse(request, template, context, status_code=status_code)


async def render_async(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    """render() for async handlers: a page reads the database as it renders (who is signed in, their
    unread notices), so it renders in a worker thread rather than on the event loop."""
    return await run_in_threadpool(render, request, template, status_code, **context)


def wants_json(request: Request) -> bool:
    path = request.url.path
    if path.startswith(("/api/", "/whip/", "/whep/")):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


async def domain_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    log.info("refused %s %s: %s (%s)", request.method, request.url.path, exc.message, exc.code)
    headers = retry_after_header(exc.details)  # a 429 says when to come back
    if wants_json(request):
        body = {"error": exc.code, "reason": exc.message, **exc.details}
        return JSONResponse(body, status_code=exc.status, headers=headers)
    response = await render_async(request, "error.html", exc.status, message=exc.message, status=exc.status)
    response.headers.update(headers)
    return response


_ROUTER_CODES = {404: "not_found", 405: "method_not_allowed"}


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """What the router itself refuses (no route matches the path, a method the route does not take):
    an API client gets the same {error, reason} as for every other refusal, a page stays plain text."""
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    if exc.status_code in (204, 304):
        return Response(status_code=exc.status_code, headers=headers)
    if wants_json(request):
        code = _ROUTER_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return JSONResponse(
            {"error": code, "reason": exc.detail}, status_code=exc.status_code, headers=headers
        )
    return PlainTextResponse(exc.detail, status_code=exc.status_code, headers=headers)
