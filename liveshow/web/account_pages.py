"""Sign up, sign in, sign out, and the account settings page (profile and API tokens)."""

from __future__ import annotations

import logging

from sqlmodel import col, func, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from liveshow.accounts import service as accounts
from liveshow.accounts.models import ApiToken, User
from liveshow.closet import fields
from liveshow.errors import DomainError, RateLimited
from liveshow.ratelimit import retry_after_header
from liveshow.web.auth import ctx, current_user, require_user_async, sign_in, sign_out
from liveshow.web.forms import read_form, redirect, safe_next
from liveshow.web.rendering import render, render_async

log = logging.getLogger(__name__)


def signup_page(request: Request) -> Response:
    if current_user(request) is not None:
        return redirect("/")
    return render(request, "signup.html", values={}, next=safe_next(request.query_params.get("next")))


async def signup(request: Request) -> Response:
    form = await read_form(request)
    username = str(form.get("username") or "")
    password = str(form.get("password") or "")
    display_name = str(form.get("display_name") or "")
    target = safe_next(str(form.get("next") or ""))
    values = {"username": username, "display_name": display_name}
    limits = ctx(request).limits
    assert limits is not None
    try:
        # Before the password is hashed: a refused sign-up costs no argon2 run.
        await limits.check("signup.address", limits.address(request))
    except RateLimited as exc:
        return _refused(request, "signup.html", exc, values=values, next=target)

    def create() -> User:
        with ctx(request).db.session() as session:
            return accounts.create_user(
                session, username, password, fields.text(display_name, "Display name", 64, name=True)
            )

    try:
        user = await run_in_threadpool(create)
    except DomainError as exc:
        log.info("signup refused: %s", exc.message)
        return await render_async(
            request, "signup.html", status_code=exc.status, error=exc.message, values=values, next=target
        )
    sign_in(request, user)
    return redirect(target if target != "/" else f"/closet/{user.username}")


def signin_page(request: Request) -> Response:
    if current_user(request) is not None:
        return redirect("/")
    return render(request, "signin.html", values={}, next=safe_next(request.query_params.get("next")))


async def signin(request: Request) -> Response:
    form = await read_form(request)
    username = str(form.get("username") or "")
    password = str(form.get("password") or "")
    target = safe_next(str(form.get("next") or ""))
    limits = ctx(request).limits
    assert limits is not None
    try:
        # Both budgets are spent before the argon2 hash is computed, and a success refunds neither:
        # an attacker signing in to an account of their own does not win back guesses at others.
        await limits.check("signin.address", limits.address(request))
        await limits.check("signin.account", username.strip().lower()[:64])
    except RateLimited as exc:
        log.info("signin throttled for %r", username[:64])
        return _refused(request, "signin.html", exc, values={"username": username}, next=target)

    def check() -> User | None:
        if len(username) > 64 or len(password) > accounts.MAX_PASSWORD:
            return None
        with ctx(request).db.session() as session:
            return accounts.authenticate(session, username, password)

    user = await run_in_threadpool(check)
    if user is None:
        log.info("signin refused for %r", username[:64])
        return render(
            request,
            "signin.html",
            status_code=401,
            error="Wrong username or password.",
            values={"username": username},
            next=target,
        )
    sign_in(request, user)
    return redirect(target)


def _refused(request: Request, template: str, exc: RateLimited, **context: object) -> Response:
    """The form again with the reason (which says when to try again), as 429 with Retry-After."""
    response = render(request, template, status_code=exc.status, error=exc.message, **context)
    response.headers.update(retry_after_header(exc.details))
    return response


async def signout(request: Request) -> Response:
    await read_form(request)
    sign_out(request)
    return redirect("/")


def settings_page(request: Request) -> Response:
    user = current_user(request)
    if user is None:
        return redirect("/signin?next=/settings")
    return _render_settings(request, user)


def _render_settings(request: Request, user: User, status_code: int = 200, **extra: object) -> Response:
    with ctx(request).db.session() as session:
        tokens = session.exec(
            select(func.count()).select_from(ApiToken).where(col(ApiToken.user_id) == user.id)
        ).one()
    return render(
        request, "settings.html", status_code=status_code, account=user, token_count=tokens, **extra
    )


async def update_profile(request: Request) -> Response:
    form = await read_form(request)
    user = await require_user_async(request)

    def save() -> User:
        with ctx(request).db.session() as session:
            row = session.get(User, user.id)
            assert row is not None
            name = fields.text(form.get("display_name"), "Display name", 64, name=True)
            row.display_name = name or row.username
            row.bio = fields.text(form.get("bio"), "About", 500, multiline=True)
            session.add(row)
            session.commit()
            session.refresh(row)
            return row

    try:
        saved = await run_in_threadpool(save)
    except DomainError as exc:
        return await run_in_threadpool(_render_settings, request, user, exc.status, error=exc.message)
    return await run_in_threadpool(_render_settings, request, saved, 200, notice="Profile saved.")


async def new_token(request: Request) -> Response:
    await read_form(request)
    user = await require_user_async(request)

    def issue() -> str:
        with ctx(request).db.session() as session:
            return accounts.issue_token(session, user)

    token = await run_in_threadpool(issue)
    # Shown once: only its hash is kept.
    return await run_in_threadpool(_render_settings, request, user, 200, new_token=token)


def routes() -> list[BaseRoute]:
    return [
        Route("/signup", signup_page, methods=["GET"]),
        Route("/signup", signup, methods=["POST"]),
        Route("/signin", signin_page, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/settings", settings_page, methods=["GET"]),
        Route("/settings/profile", update_profile, methods=["POST"]),
        Route("/settings/token", new_token, methods=["POST"]),
    ]
