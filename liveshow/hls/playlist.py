"""The LL-HLS media playlist of a window (RFC 8216bis with the low-latency tags). Pure text rendering.

URIs are relative to the playlist (``/hls/{show}/live.m3u8``) and carry the stream's ``key``: a part's
URL names exactly one byte string for ever, so caches may keep it (``immutable``), and a restarted
stream (a new key) never collides with what they hold.
"""

from __future__ import annotations

from datetime import UTC, datetime

from liveshow.hls.window import Window

# A player stays this many part targets behind the live edge (at least 2, 3 recommended).
PART_HOLD_BACK_PARTS = 3


def init_uri(key: str, init_id: int) -> str:
    return f"{key}/init-{init_id}.mp4"


def segment_uri(key: str, msn: int) -> str:
    return f"{key}/{msn}.m4s"


def part_uri(key: str, msn: int, index: int) -> str:
    return f"{key}/{msn}.{index}.m4s"


def _date(wall_ms: int) -> str:
    moment = datetime.fromtimestamp(wall_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{wall_ms % 1000:03d}Z"


def render(window: Window, key: str, target_duration: int, part_target: float) -> str:
    lines = [
        "#EXTM3U",
        "#EXT-X-VERSION:9",
        f"#EXT-X-TARGETDURATION:{target_duration}",
        f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK={part_target * PART_HOLD_BACK_PARTS:.3f}",
        f"#EXT-X-PART-INF:PART-TARGET={part_target:.3f}",
        f"#EXT-X-MEDIA-SEQUENCE:{window.first_msn}",
    ]
    if window.discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{window.discontinuity_sequence}")
    with_parts = {s.msn for s in [s for s in window.segments if s.closed][-window.part_segments :]}
    init_id: int | None = None
    for position, segment in enumerate(window.segments):
        if not segment.parts:
            continue  # just opened: nothing to list yet
        if segment.discontinuity and position > 0:
            lines.append("#EXT-X-DISCONTINUITY")
        if segment.init_id != init_id:
            init_id = segment.init_id
            lines.append(f'#EXT-X-MAP:URI="{init_uri(key, init_id)}"')
        lines.append(f"#EXT-X-PROGRAM-DATE-TIME:{_date(segment.wall_ms)}")
        if not segment.closed or segment.msn in with_parts:
            for index, part in enumerate(segment.parts):
                independent = ",INDEPENDENT=YES" if part.independent else ""
                lines.append(
                    f'#EXT-X-PART:DURATION={part.duration:.5f},URI="{part_uri(key, segment.msn, index)}"'
                    + independent
                )
        if segment.closed:
            lines.append(f"#EXTINF:{segment.duration:.5f},")
            lines.append(segment_uri(key, segment.msn))
    if window.ended:
        lines.append("#EXT-X-ENDLIST")
    elif window.segments:
        last = window.segments[-1]
        hint = (last.msn + 1, 0) if last.closed else (last.msn, len(last.parts))
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{part_uri(key, *hint)}"')
    return "\n".join(lines) + "\n"
