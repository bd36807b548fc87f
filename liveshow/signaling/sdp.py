"""Offer validation before any peer is built: size, type, syntax, one track per kind, codecs we forward."""

from __future__ import annotations

from aiortc import sdp
from aiortc.codecs import CODECS, is_rtx
from aiortc.rtcpeerconnection import find_common_codecs

from liveshow.errors import PayloadTooLarge, UnsupportedMediaType
from liveshow.media.errors import BadSdp, UnsupportedCodec

MAX_SDP_BYTES = 64 * 1024
SDP_TYPE = "application/sdp"
FORWARDED_NAMES = {"video": "VP8 or H.264 (packetization-mode=1, baseline)", "audio": "Opus"}


def check_content_type(content_type: str | None, expected: str = SDP_TYPE) -> None:
    if (content_type or "").split(";")[0].strip().lower() != expected:
        raise UnsupportedMediaType(f"Send the body as {expected}.")


def check_size(length: int) -> None:
    if length > MAX_SDP_BYTES:
        raise PayloadTooLarge(f"SDP larger than {MAX_SDP_BYTES // 1024} KiB.")


def validate_offer(body: bytes, sending: bool) -> list[str]:
    """Return the offered media kinds in m-line order; ``sending``: the offerer publishes (WHIP)."""
    check_size(len(body))
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadSdp("SDP is not UTF-8 text.") from exc
    if not text.lstrip().startswith("v=0"):
        raise BadSdp("Not an SDP offer: it must start with v=0.")
    try:
        description = sdp.SessionDescription.parse(text)
    except Exception as exc:
        raise BadSdp(f"Malformed SDP: {exc}") from exc
    kinds: list[str] = []
    for media in description.media:
        if media.kind not in ("audio", "video"):
            raise BadSdp(f"Only audio and video are accepted, not {media.kind}.")
        if media.kind in kinds:
            raise BadSdp(f"More than one {media.kind} track; send one audio and one video track.")
        ice, dtls = media.ice, media.dtls
        if (
            ice is None
            or not ice.usernameFragment
            or not ice.password
            or dtls is None
            or not dtls.fingerprints
        ):
            raise BadSdp(f"The {media.kind} section lacks ICE credentials or a DTLS fingerprint.")
        direction = media.direction or "sendrecv"
        allowed = ("sendonly", "sendrecv") if sending else ("recvonly", "sendrecv")
        if direction not in allowed:
            raise BadSdp(f"The {media.kind} section is {direction}; expected {' or '.join(allowed)}.")
        common = [c for c in find_common_codecs(CODECS[media.kind], media.rtp.codecs) if not is_rtx(c)]
        if not [c for c in common if c.name in ("VP8", "H264", "opus")]:
            offered = ", ".join(sorted({c.name for c in media.rtp.codecs if not is_rtx(c)})) or "none"
            raise UnsupportedCodec(
                f"No {media.kind} codec we forward: offered {offered}; we need {FORWARDED_NAMES[media.kind]}."
            )
        kinds.append(media.kind)
    if not kinds:
        raise BadSdp("The offer has no audio or video.")
    if "video" not in kinds and sending:
        raise BadSdp("A publisher must send video.")
    return kinds


def parse_sdpfrag(body: bytes) -> tuple[str | None, str | None, list[tuple[str | None, str]]]:
    """RFC 8840 fragment: (ice-ufrag, ice-pwd, [(mid, candidate line without 'a=')])."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadSdp("Fragment is not UTF-8 text.") from exc
    ufrag = pwd = mid = None
    candidates: list[tuple[str | None, str]] = []
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("a=ice-ufrag:"):
            ufrag = line.split(":", 1)[1]
        elif line.startswith("a=ice-pwd:"):
            pwd = line.split(":", 1)[1]
        elif line.startswith("a=mid:"):
            mid = line.split(":", 1)[1]
        elif line.startswith("a=candidate:"):
            candidates.append((mid, line[2:]))
        elif line and not line.startswith(("a=", "m=", "c=")):
            raise BadSdp(f"Unexpected line in the SDP fragment: {line[:60]}")
    return ufrag, pwd, candidates
