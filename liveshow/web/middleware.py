"""Pure ASGI middleware: request ids, access logs and HTTP metrics (WebSockets pass through)."""

from __future__ import annotations

import logging
import secrets
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from liveshow.chat.lane import SERVER_SEND
from liveshow.logs import request_id
from liveshow.metrics import Metrics

log = logging.getLogger("liveshow.access")


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        incoming = dict(scope.get("headers", [])).get(b"x-request-id", b"").decode("latin-1")
        rid = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else secrets.token_hex(8)
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", rid.encode())]
            await send(message)

        try:
            if scope["type"] == "websocket":
                # Kept unwrapped for the room's fast lane (liveshow.chat.lane): the server's own send.
                scope[SERVER_SEND] = send
                await self.app(scope, receive, send)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                elapsed = time.perf_counter() - started
                method = scope.get("method", "GET")
                self.metrics.http_requests.labels(method, str(status)).inc()
                self.metrics.http_latency.labels(method).observe(elapsed)
                if scope.get("path") not in ("/healthz", "/metrics"):
                    log.info(
                        "%s %s %s",
                        method,
                        scope.get("path"),
                        status,
                        extra={"fields": {"status": status, "ms": round(elapsed * 1000, 2)}},
                    )
            request_id.reset(token)
