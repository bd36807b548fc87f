"""Test helpers for the show room: users and shows in the DB, session cookies, a WebSocket peer."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from collections import deque
from collections.abc import Callable
from typing import Any

import websockets
from itsdangerous import TimestampSigner
from websockets.asyncio.client import ClientConnection

from liveshow.accounts.models import User
from liveshow.accounts.service import create_user
from liveshow.db import Database
from liveshow.settings import Settings
from liveshow.shows.models import Show

PASSWORD = "correct horse battery"


def add_user(db: Database, name: str) -> User:
    with db.session() as session:
        return create_user(session, name, PASSWORD, display_name=name.title())


def add_show(db: Database, seller: User, state: str = "live", title: str = "Closet sale") -> int:
    with db.session() as session:
        show = Show(seller_id=seller.id, title=title, stream_key=f"key-{title}-{seller.id}", state=state)
        session.add(show)
        session.commit()
        session.refresh(show)
        assert show.id is not None
        return show.id


def session_cookie(settings: Settings, user: User) -> str:
    """The value Starlette's SessionMiddleware would set after sign-in (same signer, same format)."""
    payload = base64.b64encode(json.dumps({"uid": user.id, "csrf": "t"}).encode())
    return TimestampSigner(settings.secret_key).sign(payload).decode()


def ws_url(base: str, show_id: int, last_seq: int | str | None = "") -> str:
    url = base.replace("http://", "ws://") + f"/ws/shows/{show_id}"
    if last_seq is not None:
        url += f"?last_seq={last_seq}"
    return url


class Peer:
    """A real WebSocket client that unwraps batches into one stream of frames."""

    _ids = itertools.count(1)

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: deque[dict[str, Any]] = deque()
        self.seen: list[dict[str, Any]] = []

    @classmethod
    async def connect(
        cls,
        base: str,
        show_id: int,
        cookie: str | None = None,
        last_seq: int | str | None = "",
        origin: str | None = None,
    ) -> Peer:
        headers = {}
        if cookie is not None:
            headers["Cookie"] = f"liveshow_session={cookie}"
        if origin is not None:
            headers["Origin"] = origin
        ws = await websockets.connect(
            ws_url(base, show_id, last_seq), additional_headers=headers, max_size=2**22
        )
        return cls(ws)

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        while not self.frames:
            raw = await asyncio.wait_for(self.ws.recv(), timeout)
            message = json.loads(raw)
            if message.get("type") == "batch":
                self.frames.extend(message["events"])
            else:
                self.frames.append(message)
        frame = self.frames.popleft()
        self.seen.append(frame)
        return frame

    async def until(
        self, match: str | Callable[[dict[str, Any]], bool], timeout: float = 5.0
    ) -> dict[str, Any]:
        test = (lambda f: f.get("type") == match) if isinstance(match, str) else match
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"no frame matching {match!r}; saw {[f.get('type') for f in self.seen]}")
            frame = await self.next(left)
            if test(frame):
                return frame

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def request(self, message: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
        """Send and wait for the reply. Events that arrive before it stay queued for until(): the server
        may flush the event a request caused before it answers the request."""
        msg_id = f"r{next(self._ids)}"
        await self.send({**message, "id": msg_id})
        held: list[dict[str, Any]] = []
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise TimeoutError(
                        f"no reply to {message.get('type')!r}; saw {[f.get('type') for f in held]}"
                    )
                frame = await self.next(left)
                if frame.get("reply_to") == msg_id:
                    return frame
                self.seen.pop()
                held.append(frame)
        finally:
            self.frames.extendleft(reversed(held))

    async def nothing(self, match: str | Callable[[dict[str, Any]], bool], seconds: float) -> None:
        """Assert no matching frame arrives within seconds."""
        try:
            frame = await self.until(match, seconds)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected frame {frame}")

    async def close(self) -> None:
        await self.ws.close()


class RoomEnv:
    """A served app with a seller, two viewers and a live show."""

    def __init__(self, settings: Settings, url: str) -> None:
        self.settings = settings
        self.url = url
        self.db = Database(settings.database_url)
        self.seller = add_user(self.db, "seller")
        self.alice = add_user(self.db, "alice")
        self.bob = add_user(self.db, "bob")
        self.show_id = add_show(self.db, self.seller)

    def cookie(self, user: User) -> str:
        return session_cookie(self.settings, user)

    async def join(
        self, user: User | None, last_seq: int | str | None = "", show_id: int | None = None
    ) -> Peer:
        peer = await Peer.connect(
            self.url, show_id or self.show_id, self.cookie(user) if user else None, last_seq=last_seq
        )
        return peer

    async def join_snapshot(self, user: User | None) -> tuple[Peer, dict[str, Any]]:
        peer = await self.join(user)
        snapshot = await peer.until("snapshot")
        return peer, snapshot
