"""Temporal layers end to end: the studio in headless Chromium publishes VP8 with three temporal layers
(L1T3), two Chromium players watch, and the relay holds one of them at the base layer. That viewer
decodes a quarter of the frames, steadily, without NACKs or keyframe requests (the layers not sent leave
no gaps, PictureIDs renumbered), while the other keeps every frame; released, it climbs back at the
stream's layer-sync frames."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from liveshow.app import create_app
from liveshow.media.layers import LayerPolicy
from liveshow.media.service import MediaService
from liveshow.shows.models import Show
from tests.conftest import LiveServer, make_settings
from tests.test_browser_video import add_test_pages, frames_decoded, wait_until
from tests.test_whip_media import make_show

pytestmark = pytest.mark.browser

WINDOW = 4.0  # seconds each rate is measured over


class HeldAtBase(LayerPolicy):
    """A policy that keeps its viewer at the base layer whatever its reports say."""

    def report(self, now: float, fraction_lost: float) -> int:
        return self.target

    def backlog(self, now: float, buffered: int) -> int:
        return self.target


@pytest.fixture
def layer_stage(tmp_path: Path, sqlite_url: str) -> Iterator[tuple[LiveServer, Show, MediaService]]:
    app = create_app(make_settings(tmp_path, sqlite_url, publisher_grace_seconds=30.0))
    add_test_pages(app)
    server = LiveServer(app).start()
    show, _ = make_show(app, "seller" + secrets.token_hex(3))
    media = app.state.ctx.media
    assert media is not None
    yield server, show, media
    server.stop()


def inbound_video(page: Any) -> dict[str, float]:
    return dict(
        page.evaluate(
            """async () => {
                const out = {framesDecoded: 0, nackCount: 0, pliCount: 0, firCount: 0,
                             totalFreezesDuration: 0};
                const pc = window.liveshowPlayer && window.liveshowPlayer.pc;
                if (!pc) return out;
                (await pc.getStats()).forEach((s) => {
                    if (s.type === "inbound-rtp" && s.kind === "video") {
                        for (const k of Object.keys(out)) out[k] += s[k] || 0;
                    }
                });
                return out;
            }"""
        )
    )


def measure(pages: list[Any]) -> list[dict[str, float]]:
    """Each page's inbound video counters' growth over WINDOW seconds, frames as a rate."""
    before = [inbound_video(p) for p in pages]
    time.sleep(WINDOW)
    after = [inbound_video(p) for p in pages]
    out = []
    for b, a in zip(before, after, strict=True):
        delta = {k: a[k] - b[k] for k in a}
        delta["fps"] = delta["framesDecoded"] / WINDOW
        out.append(delta)
    return out


def test_a_viewer_held_at_the_base_layer_plays_a_quarter_of_the_frames_without_gaps(
    browser: Any, layer_stage: tuple[LiveServer, Show, MediaService]
) -> None:
    server, show, media = layer_stage
    show_id = show.id or 0
    contexts = [browser.new_context() for _ in range(3)]
    contexts[0].grant_permissions(["camera", "microphone"])
    studio = contexts[0].new_page()
    try:
        studio.goto(f"{server.url}/test/studio/{show_id}")
        studio.wait_for_function("document.getElementById('studio-preview').videoWidth > 0")
        studio.get_by_role("button", name="Go live").click()
        studio.wait_for_function("document.getElementById('studio-connection').textContent === 'connected'")

        wide = contexts[1].new_page()
        wide.goto(f"{server.url}/test/show/{show_id}")
        wait_until(lambda: frames_decoded(wide) > 0, timeout=30)
        relay = media.shows[show_id].relay
        first_outputs = set(relay.outputs)
        narrow = contexts[2].new_page()
        narrow.goto(f"{server.url}/test/show/{show_id}")
        wait_until(lambda: frames_decoded(narrow) > 0, timeout=30)
        assert media.shows[show_id].codecs["video"] == "VP8"
        (narrow_id,) = set(relay.outputs) - first_outputs
        output = relay.outputs[narrow_id]
        held = HeldAtBase(time.monotonic())
        held.target = 0
        output.policy = held
        wait_until(lambda: output.tracks["video"].layer == 0, timeout=10)
        time.sleep(1.0)  # the switch settles

        dropped = relay.layer_counts.dropped
        wide_rate, narrow_rate = measure([wide, narrow])
        assert relay.layer_counts.dropped > dropped  # the stream is layered, and layers were held back
        assert wide_rate["fps"] >= 15, wide_rate
        assert 0.15 * wide_rate["fps"] <= narrow_rate["fps"] <= 0.4 * wide_rate["fps"], (
            wide_rate,
            narrow_rate,
        )
        # No gaps to NACK, no picture it could not decode, no freeze.
        assert narrow_rate["nackCount"] == 0 and narrow_rate["pliCount"] + narrow_rate["firCount"] == 0
        assert narrow_rate["totalFreezesDuration"] == 0, narrow_rate

        # Released: it climbs back one layer at a time at layer-sync frames, no keyframe needed.
        ups = relay.layer_counts.up
        output.policy = LayerPolicy(time.monotonic())
        wait_until(lambda: output.tracks["video"].layer == 2, timeout=10)
        assert relay.layer_counts.up >= ups + 1
        time.sleep(1.0)
        wide_rate, narrow_rate = measure([wide, narrow])
        assert narrow_rate["fps"] >= 0.8 * wide_rate["fps"], (wide_rate, narrow_rate)
        assert narrow_rate["nackCount"] == 0 and narrow_rate["pliCount"] + narrow_rate["firCount"] == 0
    finally:
        for context in contexts:
            context.close()
