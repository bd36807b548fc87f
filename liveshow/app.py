"""create_app(settings): the one place where adapters are built and routes are assembled."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

from liveshow.auction.install import install as auction_install
from liveshow.bus import make_bus
from liveshow.chat import routes as room_routes
from liveshow.context import WEB_DIR, AppContext
from liveshow.db import Database
from liveshow.errors import DomainError
from liveshow.gctune import pauses_timed, tune_gc
from liveshow.hls import install as hls_install
from liveshow.logs import setup_logging
from liveshow.looplag import measure_lag_forever
from liveshow.media import install as media_install
from liveshow.metrics import Metrics
from liveshow.orders import install as orders_install
from liveshow.ratelimit.service import Limits
from liveshow.replay import install as replay_install
from liveshow.seqstore import SeqStore
from liveshow.settings import Settings, load_settings
from liveshow.showlog import ShowLog
from liveshow.social import routes as social_routes
from liveshow.web import convertors, ops, pages
from liveshow.web.middleware import RequestContextMiddleware
from liveshow.web.rendering import domain_error_handler, http_error_handler, make_templates
from liveshow.web.unavailable import HANDLED as DATABASE_ERRORS
from liveshow.web.unavailable import database_down_handler

log = logging.getLogger(__name__)


def build_context(settings: Settings) -> AppContext:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.uploads_dir.mkdir(parents=True, exist_ok=True)
    db = Database(settings.resolved_database_url)
    bus = make_bus(settings.bus_url, prefix=settings.bus_prefix, durable=SeqStore(db))
    return AppContext(
        settings=settings,
        db=db,
        bus=bus,
        templates=make_templates(),
        metrics=Metrics(),
        showlog=ShowLog(bus, db),
        limits=Limits(settings),
    )


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or load_settings()
    setup_logging(settings.log_level)
    context = build_context(settings)

    async def shut_down() -> None:
        for stop in reversed(context.on_shutdown):
            try:
                await stop()
            except Exception:
                log.exception("shutdown hook failed")
        await context.showlog.stop()
        if context.limits is not None:
            await context.limits.close()
        await context.bus.close()
        context.db.close()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await context.bus.start()
            await context.showlog.start()
            for start in context.on_startup:
                await start()
        except BaseException:
            # A start that fails half way (a dependency down) stops what did start: a service left
            # running, or a process-wide listener left registered, would outlive this app.
            await shut_down()
            raise
        if settings.gc_tuning:
            tune_gc()
        log.info("liveshow ready", extra={"fields": {"bus": settings.bus_url.split("@")[-1]}})
        lag_probe = asyncio.create_task(measure_lag_forever(context.metrics.loop_lag), name="loop-lag")
        try:
            with pauses_timed(context.metrics.gc_pause):
                yield
        finally:
            lag_probe.cancel()
            await shut_down()

    convertors.install()
    routes: list[BaseRoute] = [
        *ops.routes(),
        *pages.routes(context),
        *social_routes.install(context),
        *media_install.install(context),
        *hls_install.install(context),
        *replay_install.install(context),
        *orders_install.install(context),
        *auction_install(context),
        *room_routes.install(context),
        Mount("/static", app=StaticFiles(directory=str(WEB_DIR / "static")), name="static"),
        Mount(
            "/uploads", app=StaticFiles(directory=str(settings.uploads_dir), check_dir=False), name="uploads"
        ),
    ]
    https = settings.public_url.startswith("https://")
    middleware = [
        Middleware(RequestContextMiddleware, metrics=context.metrics),
        Middleware(
            SessionMiddleware,
            secret_key=settings.secret_key,
            session_cookie="liveshow_session",
            same_site="lax",
            https_only=https,
            max_age=14 * 24 * 3600,
        ),
    ]
    app = Starlette(
        routes=routes,
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={
            DomainError: domain_error_handler,
            HTTPException: http_error_handler,
            # The database down answers 503 + Retry-After (any other database error stays a 500).
            **dict.fromkeys(DATABASE_ERRORS, database_down_handler),
        },
    )
    app.state.ctx = context
    return app
