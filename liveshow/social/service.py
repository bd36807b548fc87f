"""The social service on ``context.social``: the pieces other features call into."""

from __future__ import annotations

from dataclasses import dataclass

from liveshow.social.notifier import Notifier
from liveshow.social.watcher import ShowWatcher
from liveshow.social.webpush import WebPush


@dataclass
class SocialService:
    notifier: Notifier
    push: WebPush
    watcher: ShowWatcher
