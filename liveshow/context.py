"""What a running app holds: settings, adapters and services, built once in create_app."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.templating import Jinja2Templates

from liveshow.accounts.models import User
from liveshow.bus import Bus
from liveshow.db import Database
from liveshow.metrics import Metrics
from liveshow.settings import Settings
from liveshow.showlog import ShowLog

if TYPE_CHECKING:
    from liveshow.auction.service import AuctionService
    from liveshow.chat.service import RoomService
    from liveshow.media.service import MediaService
    from liveshow.orders.providers import PaymentProvider
    from liveshow.ratelimit.service import Limits
    from liveshow.replay.service import RecordingService
    from liveshow.social.service import SocialService

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

# A room message type answered by another service (e.g. "bid", "claim"): called with the show id, the
# sender (None when anonymous) and the decoded message; returns the reply frame for the sender, or
# None. Raise a DomainError to refuse: the room turns it into an error frame.
RoomHandler = Callable[[int, User | None, dict[str, Any]], Awaitable[dict[str, Any] | None]]
# Called for every accepted chat message (show id, author, text, message id), e.g. to turn "claim 2" into
# a claim. A message sent again after a lost answer may meet the hooks twice: act once per message id.
ChatHook = Callable[[int, User, str, int], Awaitable[None]]


@dataclass
class AppContext:
    settings: Settings
    db: Database
    bus: Bus
    templates: Jinja2Templates
    metrics: Metrics
    # Publish show events through this (not the bare bus) so they are archived for replay.
    showlog: ShowLog
    # Rate limits (liveshow.ratelimit), built in build_context; None only in a bare context.
    limits: Limits | None = None
    room_handlers: dict[str, RoomHandler] = field(default_factory=dict)
    chat_hooks: list[ChatHook] = field(default_factory=list)
    # Services register their own start and stop hooks; lifespan runs them in order (stop reversed).
    on_startup: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    on_shutdown: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    # Likes, follows, notices, offers, discovery (liveshow.social); closet calls social.listing_saved.
    social: SocialService | None = None
    # Live video (liveshow.media): publishers, relay, viewers, show lifecycle, sinks for the recorder.
    media: MediaService | None = None
    # Recordings of live shows (liveshow.replay): the relay's recorder sink, retention, deletion.
    recordings: RecordingService | None = None
    # Claims, bids and orders (liveshow.auction.install).
    auction: AuctionService | None = None
    # How buyers pay (liveshow.orders.install): manual, test or stripe.
    payments: PaymentProvider | None = None
    # The show room (chat, reactions, presence); its snapshot_providers let features add to snapshots.
    room: RoomService | None = None
