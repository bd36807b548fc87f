"""Packetization done once per frame: RTP payloads shared by every viewer of a show.

aiortc's packetizers are classmethods of its encoders, so no encoder (and no codec context) is ever
created; only the RTP header is per viewer (see ``relay.ViewerOutput``).
"""

from __future__ import annotations

from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder

from liveshow.media.frames import EncodedFrame


class Packetizer:
    """Turns frames of one publish stream into RTP payloads; VP8 needs a running picture id."""

    def __init__(self) -> None:
        self._picture_id = 0

    def payloads(self, frame: EncodedFrame) -> list[bytes]:
        if frame.codec == "VP8":
            self._picture_id = (self._picture_id + 1) % (1 << 15)
            return Vp8Encoder._packetize(frame.data, self._picture_id)
        if frame.codec == "H264":
            return H264Encoder._packetize(H264Encoder._split_bitstream(frame.data))
        return [frame.data]
