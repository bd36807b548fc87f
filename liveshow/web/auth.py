"""Who is asking: the signed session cookie, or an API token in the Authorization header."""

from __future__ import annotations

import hmac
import secrets

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection, Request

from liveshow.accounts.models import User
from liveshow.accounts.service import user_for_token
from liveshow.context import AppContext
from liveshow.errors import Forbidden, NotAuthenticated, ValidationFailed
from liveshow.jsonbody import limit_body

SESSION_USER = "uid"
SESSION_CSRF = "csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
# The most of a form body read to find its CSRF token (read_form sets its own, larger limit first).
CSRF_FORM_BYTES = 1024 * 1024


def ctx(conn: HTTPConnection) -> AppContext:
    context: AppContext = conn.app.state.ctx
    return context


def bearer_token(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def current_user(conn: HTTPConnection) -> User | None:
    """The signed-in user, cached on the connection; works for requests and WebSockets."""
    if "user" in conn.scope.get("state", {}):
        cached: User | None = conn.scope["state"]["user"]
        return cached
    user: User | None = None
    token = bearer_token(conn) if conn.url.path.startswith("/api/") else None
    with ctx(conn).db.session() as session:
        if token is not None:
            user = user_for_token(session, token)
        elif (uid := conn.session.get(SESSION_USER)) is not None:
            found = session.get(User, int(uid))
            user = found if found is not None and found.is_active else None
    conn.scope.setdefault("state", {})["user"] = user
    return user


def require_user(conn: HTTPConnection) -> User:
    user = current_user(conn)
    if user is None:
        raise NotAuthenticated("Sign in first.")
    return user


async def current_user_async(conn: HTTPConnection) -> User | None:
    """current_user for async handlers: the database read runs in a worker thread, never on the event
    loop (where it stalled every socket of the process for as long as the query took)."""
    if "user" in conn.scope.get("state", {}):
        return current_user(conn)
    return await run_in_threadpool(current_user, conn)


async def require_user_async(conn: HTTPConnection) -> User:
    user = await current_user_async(conn)
    if user is None:
        raise NotAuthenticated("Sign in first.")
    return user


def sign_in(request: Request, user: User) -> None:
    # A new CSRF token on sign-in keeps a token planted before sign-in from being reused.
    request.session.clear()
    request.session[SESSION_USER] = user.id
    request.session[SESSION_CSRF] = secrets.token_urlsafe(24)
    request.scope.setdefault("state", {})["user"] = user


def sign_out(request: Request) -> None:
    request.session.clear()
    request.scope.setdefault("state", {})["user"] = None


def csrf_token(conn: HTTPConnection) -> str:
    token = conn.session.get(SESSION_CSRF)
    if not token:
        token = secrets.token_urlsafe(24)
        conn.session[SESSION_CSRF] = token
    return str(token)


async def check_csrf(request: Request) -> None:
    """Every state-changing request made with the session cookie must echo the session's token.

    API calls authenticated by a bearer token carry no ambient authority, so they need none.
    """
    if bearer_token(request) is not None and request.url.path.startswith("/api/"):
        return
    expected = request.session.get(SESSION_CSRF)
    sent = request.headers.get(CSRF_HEADER)
    if sent is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        limit_body(request, CSRF_FORM_BYTES)  # a token field needs no more; stops unbounded uploads
        try:
            form = await request.form()
        except HTTPException as exc:  # a malformed multipart body: answered in our shape, not plain text
            raise ValidationFailed(f"The form could not be read: {exc.detail}") from exc
        value = form.get(CSRF_FIELD)
        sent = value if isinstance(value, str) else None
    if not expected or not sent or not hmac.compare_digest(str(expected), sent):
        raise Forbidden("The form expired or came from another site; reload the page and try again.")
