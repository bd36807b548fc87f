"""Two app processes on one Redis bus and one database: a go-live is announced once, not twice."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from liveshow.app import create_app
from tests.conftest import REDIS_URL, make_settings
from tests.test_notices import wait_for_notices
from tests.test_social_support import act_as, app_ctx, make_show, make_user, wait_until_watched

pytestmark = pytest.mark.redis


def test_two_processes_announce_once(tmp_path: Path, sqlite_url: str, redis_prefix: str) -> None:
    settings = make_settings(tmp_path, sqlite_url, bus_url=REDIS_URL, bus_prefix=redis_prefix)
    app_a, app_b = create_app(settings), create_app(settings)
    with (
        TestClient(app_a, base_url="http://127.0.0.1") as a,
        TestClient(app_b, base_url="http://127.0.0.1") as b,
    ):
        seller, fan = make_user(app_a, "seller1"), make_user(app_a, "fan1")
        a.post("/api/sellers/seller1/follow", json={"following": True}, headers=act_as(a, fan))
        show = make_show(app_a, seller, "Two-process show")
        assert len(wait_for_notices(app_a, fan.id, "show_scheduled")) == 1
        wait_until_watched(app_a, show.id)
        wait_until_watched(app_b, show.id)
        a.portal.call(app_ctx(app_a).showlog.publish, show.id, "show.state", {"state": "live"})
        assert len(wait_for_notices(app_a, fan.id, "show_live")) == 1
        time.sleep(1.0)  # give the other process every chance to announce it again
        assert len(wait_for_notices(app_b, fan.id, "show_live")) == 1
        assert len(wait_for_notices(app_b, fan.id, "show_scheduled")) == 1
        # Either process serves the fan's notices.
        act_as(b, fan)
        assert b.get("/api/notices").json()["unread"] == 2
