"""Account operations: sign up, sign in, API tokens. Synchronous; callers hold the session."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlmodel import Session, select

from liveshow import usertext
from liveshow.accounts.models import ApiToken, User
from liveshow.accounts.passwords import hash_password, verify_password
from liveshow.errors import Conflict, ValidationFailed

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{2,31}$")
MIN_PASSWORD = 8
MAX_PASSWORD = 256


def validate_username(username: str) -> str:
    name = username.strip().lower()
    if not USERNAME_RE.match(name):
        raise ValidationFailed("Username: 3 to 32 characters, lower-case letters, digits, - and _.")
    return name


def validate_password(password: str) -> str:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise ValidationFailed(f"Password: {MIN_PASSWORD} to {MAX_PASSWORD} characters.")
    return password


def create_user(session: Session, username: str, password: str, display_name: str = "") -> User:
    name = validate_username(username)
    validate_password(password)
    if session.exec(select(User).where(User.username == name)).first() is not None:
        raise Conflict("That username is taken.")
    user = User(
        username=name,
        display_name=(usertext.clean(display_name, name=True) or name)[:64],
        password_hash=hash_password(password),
    )
    session.add(user)
    session.commit()
    session.refresh(user)
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = session.exec(select(User).where(User.username == username.strip().lower())).first()
    if user is None or not user.is_active:
        # Hash anyway so a missing user costs the same time as a wrong password.
        verify_password(_DUMMY_HASH, password)
        return None
    return user if verify_password(user.password_hash, password) else None


def issue_token(session: Session, user: User) -> str:
    assert user.id is not None
    token = "lst_" + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=_digest(token)))
    session.commit()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == _digest(token))).first()
    if row is None:
        return None
    user = session.get(User, row.user_id)
    return user if user is not None and user.is_active else None


def get_user_by_name(session: Session, username: str) -> User | None:
    return session.exec(select(User).where(User.username == username.strip().lower())).first()


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


_DUMMY_HASH = hash_password(secrets.token_hex(16))
