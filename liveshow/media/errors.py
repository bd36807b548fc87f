"""Media and signaling refusals, each with its own stable code."""

from __future__ import annotations

from liveshow.errors import Conflict, DomainError, Forbidden, ValidationFailed


class BadSdp(ValidationFailed):
    code = "bad_sdp"


class UnsupportedCodec(ValidationFailed):
    code = "unsupported_codec"


class PublisherExists(Conflict):
    code = "publisher_exists"


class NotLive(Conflict):
    code = "not_live"


class ShowEnded(Forbidden):
    code = "show_ended"


class IceRestartUnsupported(ValidationFailed):
    code = "ice_restart_unsupported"
    status = 422


class NoMediaPort(DomainError):
    """Every UDP port of LIVESHOW_ICE_PORT_RANGE is taken: this process is full for media."""

    code = "no_media_port"
    status = 503


class ServedElsewhere(Exception):
    """The show's publisher is held by another server process: WHEP is redirected to ``url``."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class ProcessFull(DomainError):
    """This process takes no more viewers for now (liveshow/media/headroom.py): 503 + Retry-After;
    ``cause`` says which limit (viewers, cpu, loop_lag, joining)."""

    code = "full"
    status = 503
