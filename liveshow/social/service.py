"""The social service on ``context.social``: the pieces other features call into."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlmodel import Session

from liveshow.closet.models import Listing
from liveshow.social.embedder import ModelMissing
from liveshow.social.notifier import Notifier
from liveshow.social.similar import SimilarIndex
from liveshow.social.watcher import ShowWatcher
from liveshow.social.webpush import WebPush

log = logging.getLogger(__name__)


@dataclass
class SocialService:
    notifier: Notifier
    push: WebPush
    watcher: ShowWatcher
    similar: SimilarIndex

    def listing_saved(self, session: Session, listing: Listing) -> None:
        """Call after a listing is created or edited (same thread, after commit): embeds it for
        "More like this". Never fails the save: a missing model is logged, the backfill catches up."""
        try:
            self.similar.listing_saved(session, listing)
        except ModelMissing as exc:
            log.warning("listing %s not embedded: %s", listing.id, exc)
