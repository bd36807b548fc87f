"""Every bad WHIP/WHEP/end request gets a 4xx with a reason, and none disturbs a running show."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiortc import RTCPeerConnection

from liveshow.signaling.client import Watcher, publish
from tests.test_whip_media import Stage, make_show, staged_server, wait_for

SDP = {"Content-Type": "application/sdp"}


@pytest.fixture
def stage(tmp_path: Path, sqlite_url: str) -> Iterator[Stage]:
    yield from staged_server(tmp_path, sqlite_url)


async def offer(*kinds: str, direction: str = "sendonly") -> str:
    pc = RTCPeerConnection()
    for kind in kinds:
        pc.addTransceiver(kind, direction=direction)
    await pc.setLocalDescription(await pc.createOffer())
    text = pc.localDescription.sdp
    await pc.close()
    return text


def refused(resp: httpx.Response, status: int, code: str | None = None) -> None:
    assert resp.status_code == status, resp.text
    body: dict[str, Any] = resp.json()
    assert body["reason"]
    if code:
        assert body["error"] == code
    if resp.request.url.path.startswith(("/whip/", "/whep/")):
        assert resp.headers["access-control-allow-origin"] == "*"


async def test_bad_input_is_refused_and_the_show_goes_on(stage: Stage) -> None:
    show_id = stage.show.id
    auth = {"Authorization": f"Bearer {stage.show.stream_key}"}
    pub, location = await publish(stage.whip, stage.show.stream_key)
    await wait_for(lambda: stage.media.state(show_id or 0) == "live")
    watcher = Watcher()
    await watcher.watch(stage.whep)
    await wait_for(lambda: watcher.frames["video"] >= 10)

    good = await offer("video", "audio")
    two_videos = await offer("video", "video")
    av1_only = re.sub(r"(a=rtpmap:\d+) (VP8|H264)/90000", r"\1 AV1/90000", good)
    recv_offer = await offer("video", "audio", direction="recvonly")
    async with httpx.AsyncClient(base_url=stage.server.url) as http:
        url = f"/whip/{show_id}"
        refused(await http.post(url, content=good, headers=SDP), 401, "not_authenticated")
        refused(await http.post(url, content=good, headers={**SDP, "Authorization": "Bearer nope"}), 401)
        refused(await http.post(url, content=good, headers={**auth, "Content-Type": "text/plain"}), 415)
        big = good + "a=x-pad:" + "x" * 70_000 + "\r\n"
        refused(await http.post(url, content=big, headers={**auth, **SDP}), 413)
        refused(await http.post(url, content="hello", headers={**auth, **SDP}), 400, "bad_sdp")
        refused(await http.post(url, content=b"v=0\r\n\xff\xfe", headers={**auth, **SDP}), 400, "bad_sdp")
        refused(await http.post(url, content="v=0\r\ns=-\r\n", headers={**auth, **SDP}), 400, "bad_sdp")
        refused(await http.post(url, content=two_videos, headers={**auth, **SDP}), 400, "bad_sdp")
        refused(await http.post(url, content=av1_only, headers={**auth, **SDP}), 400, "unsupported_codec")
        refused(await http.post(url, content=recv_offer, headers={**auth, **SDP}), 400, "bad_sdp")
        refused(await http.post(url, content=good, headers={**auth, **SDP}), 409, "publisher_exists")
        refused(await http.post("/whip/99999", content=good, headers={**auth, **SDP}), 404)
        refused(await http.post(f"/whep/{show_id}", content=good, headers=SDP), 400, "bad_sdp")  # sendonly
        refused(await http.post(f"/whep/{show_id}", content=recv_offer, headers={"Content-Type": "x"}), 415)
        refused(await http.delete(f"{url}/not-a-session"), 404)
        refused(await http.delete(f"/whep/{show_id}/not-a-session"), 404)

        # trickle: a candidate is accepted, an ICE restart is refused, the fragment type is checked
        frag = "a=mid:0\r\na=candidate:1 1 udp 2130706431 127.0.0.1 9 typ host\r\n"
        frag_type = {"Content-Type": "application/trickle-ice-sdpfrag"}
        assert (await http.patch(location, content=frag, headers=frag_type)).status_code == 204
        restart = "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
        refused(
            await http.patch(location, content=restart, headers=frag_type), 422, "ice_restart_unsupported"
        )
        refused(await http.patch(location, content=frag, headers=SDP), 415)
        options = await http.options(url)
        assert options.status_code == 204 and "POST" in options.headers["access-control-allow-methods"]

        # ending: only the show's seller
        refused(await http.post(f"/api/shows/{show_id}/end"), 401)
        _, other_token = make_show(stage.app, "other")
        refused(
            await http.post(f"/api/shows/{show_id}/end", headers={"Authorization": f"Bearer {other_token}"}),
            403,
        )

    frames = watcher.frames["video"]
    await wait_for(lambda: watcher.frames["video"] > frames + 15)
    assert stage.media.state(show_id or 0) == "live"
    await watcher.close()
    await pub.close()


async def test_viewers_of_private_ended_or_unstarted_shows(stage: Stage) -> None:
    recv_offer = await offer("video", "audio", direction="recvonly")
    private, _ = make_show(stage.app, "privateseller", visibility="private")
    ended, _ = make_show(stage.app, "endedseller", state="ended")
    async with httpx.AsyncClient(base_url=stage.server.url) as http:
        refused(await http.post(f"/whep/{private.id}", content=recv_offer, headers=SDP), 404)
        refused(await http.post(f"/whep/{ended.id}", content=recv_offer, headers=SDP), 403, "show_ended")
        refused(await http.post(f"/whep/{stage.show.id}", content=recv_offer, headers=SDP), 409, "not_live")
        refused(await http.post("/whep/424242", content=recv_offer, headers=SDP), 404)
        status = await http.get(f"/api/shows/{private.id}/media")
        assert status.status_code == 404
        status = await http.get(f"/api/shows/{stage.show.id}/media")
        assert status.json() == {"id": stage.show.id, "state": "scheduled", "viewers": 0}
        pub_offer = await offer("video", "audio")
        auth = {"Authorization": f"Bearer {ended.stream_key}", **SDP}
        refused(await http.post(f"/whip/{ended.id}", content=pub_offer, headers=auth), 403, "show_ended")
