"""The VP8 RTP payload descriptor (RFC 7741 section 4.2), read and rewritten without touching the frame.

The relay reads it once per incoming packet: where a frame starts (S bit, partition 0), whether it is a
keyframe (the P bit of the VP8 payload header that follows the descriptor), its temporal layer (TID) and
whether an upper-layer frame depends only on the base layer (Y, "layer sync": a viewer may start
receiving that layer there). A viewer that is sent fewer layers sees gaps in PictureID, which decoders
read as lost frames, so the relay renumbers it per viewer (``with_picture_id``).

Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass


class Vp8DescriptorError(ValueError):
    """The payload is too short for the descriptor its own flags announce."""


@dataclass(frozen=True, slots=True)
class Vp8Descriptor:
    size: int  # bytes of descriptor before the VP8 payload
    start: bool  # S: the first packet of a VP8 partition
    partition: int  # PID: the partition index (0 for the frame's first)
    non_reference: bool  # N: no other frame refers to this one
    picture_id: int  # -1 when absent
    picture_id_at: int  # byte offset of the PictureID field, -1 when absent
    picture_id_bits: int  # 7 or 15 (M bit), 0 when absent
    tl0picidx: int  # -1 when absent
    tid: int  # -1 when absent (a publisher without temporal layers)
    layer_sync: bool  # Y
    keyidx: int  # -1 when absent

    @property
    def frame_start(self) -> bool:
        """The packet that begins a frame: the start of partition 0."""
        return self.start and self.partition == 0


def parse(payload: bytes) -> Vp8Descriptor:
    """Read the descriptor at the head of a VP8 RTP payload."""
    n = len(payload)
    if n < 1:
        raise Vp8DescriptorError("empty VP8 payload")
    b0 = payload[0]
    x = b0 & 0x80
    non_reference = bool(b0 & 0x20)
    start = bool(b0 & 0x10)
    partition = b0 & 0x07
    pos = 1
    picture_id = picture_id_at = tl0picidx = tid = keyidx = -1
    bits = 0
    sync = False
    if x:
        if n < 2:
            raise Vp8DescriptorError("VP8 descriptor truncated after X")
        b1 = payload[1]
        pos = 2
        if b1 & 0x80:  # I: PictureID
            if n < pos + 1:
                raise Vp8DescriptorError("VP8 descriptor truncated in PictureID")
            picture_id_at = pos
            if payload[pos] & 0x80:  # M: 15 bits
                if n < pos + 2:
                    raise Vp8DescriptorError("VP8 descriptor truncated in PictureID")
                picture_id = ((payload[pos] & 0x7F) << 8) | payload[pos + 1]
                bits = 15
                pos += 2
            else:
                picture_id = payload[pos] & 0x7F
                bits = 7
                pos += 1
        if b1 & 0x40:  # L: TL0PICIDX
            if n < pos + 1:
                raise Vp8DescriptorError("VP8 descriptor truncated in TL0PICIDX")
            tl0picidx = payload[pos]
            pos += 1
        if b1 & 0x30:  # T and/or K: one byte TID|Y|KEYIDX
            if n < pos + 1:
                raise Vp8DescriptorError("VP8 descriptor truncated in TID/KEYIDX")
            b = payload[pos]
            if b1 & 0x20:
                tid = b >> 6
                sync = bool(b & 0x20)
            if b1 & 0x10:
                keyidx = b & 0x1F
            pos += 1
    return Vp8Descriptor(
        size=pos,
        start=start,
        partition=partition,
        non_reference=non_reference,
        picture_id=picture_id,
        picture_id_at=picture_id_at,
        picture_id_bits=bits,
        tl0picidx=tl0picidx,
        tid=tid,
        layer_sync=sync,
        keyidx=keyidx,
    )


def is_keyframe_start(payload: bytes, desc: Vp8Descriptor) -> bool:
    """The first packet of a keyframe: a decoder (or a viewer joining) can start here. RFC 7741 4.3:
    the VP8 payload header's P bit (bit 0 of its first byte) is 0 for a keyframe."""
    return desc.frame_start and len(payload) > desc.size and not payload[desc.size] & 0x01


def with_picture_id(payload: bytes, at: int, bits: int, picture_id: int) -> bytes:
    """The payload with its PictureID field (at byte ``at``, 7 or 15 bits wide) set to ``picture_id``
    (taken modulo the field's width); everything else unchanged."""
    if bits == 15:
        value = picture_id & 0x7FFF
        return payload[:at] + bytes((0x80 | (value >> 8), value & 0xFF)) + payload[at + 2 :]
    if bits == 7:
        return payload[:at] + bytes((picture_id & 0x7F,)) + payload[at + 1 :]
    raise ValueError("a PictureID is 7 or 15 bits wide")
