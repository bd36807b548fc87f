"""bench/hls.py's reading of an LL-HLS media playlist: when a part began, and the part to ask for next."""

from __future__ import annotations

from datetime import datetime

import pytest

from bench.hls import part_started, preload_hint

PLAYLIST = """#EXTM3U
#EXT-X-TARGETDURATION:2
#EXT-X-PART-INF:PART-TARGET=0.2
#EXT-X-PROGRAM-DATE-TIME:2026-12-06T08:00:00.000Z
#EXT-X-PART:DURATION=0.2,URI="p/7.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.25,URI="p/7.1.m4s"
#EXTINF:0.45,
s/7.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-12-06T08:00:00.450Z
#EXT-X-PART:DURATION=0.2,URI="p/8.0.m4s",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.2,URI="p/8.1.m4s"
#EXT-X-PRELOAD-HINT:TYPE=PART,URI="p/8.2.m4s"
""".splitlines()
T0 = datetime.fromisoformat("2026-12-06T08:00:00+00:00").timestamp()


def test_a_part_begins_at_the_date_above_it_plus_the_parts_between() -> None:
    assert part_started(PLAYLIST, "p/7.0.m4s") == pytest.approx(T0)
    assert part_started(PLAYLIST, "p/7.1.m4s") == pytest.approx(T0 + 0.2)
    assert part_started(PLAYLIST, "p/8.0.m4s") == pytest.approx(T0 + 0.45)  # dated by its own segment
    assert part_started(PLAYLIST, "p/8.1.m4s") == pytest.approx(T0 + 0.65)


def test_what_the_playlist_does_not_say_is_an_error_the_clients_count() -> None:
    assert preload_hint(PLAYLIST) == "p/8.2.m4s"
    with pytest.raises(StopIteration):
        part_started(PLAYLIST, "p/9.0.m4s")  # not listed (yet)
    with pytest.raises(ValueError):
        part_started([line for line in PLAYLIST if "DATE-TIME" not in line], "p/7.0.m4s")
    with pytest.raises(StopIteration):
        preload_hint(PLAYLIST[:-1])
