"""The garbage-collector settings a served app applies at startup (liveshow/gctune.py)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from liveshow.app import create_app
from liveshow.db import migrate
from liveshow.gctune import MIDDLE, OLD, YOUNG
from tests.conftest import make_settings


@pytest.fixture
def restore_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


def test_a_served_app_freezes_its_startup_heap_and_spaces_out_full_collections(
    tmp_path: Path, restore_gc: None
) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'gc.db'}", gc_tuning=True)
    migrate(settings.database_url)
    app = create_app(settings)
    assert gc.get_freeze_count() == 0
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        # The app's own objects (routes, settings) are now out of the collector's walk.
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold() == (YOUNG, MIDDLE, OLD)
        assert gc.isenabled()


def test_switched_off_it_leaves_the_collector_alone(tmp_path: Path, restore_gc: None) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'gc.db'}")
    migrate(settings.database_url)
    before = gc.get_threshold()
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == before


def test_collections_are_timed_into_metrics_while_the_app_runs(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, f"sqlite:///{tmp_path / 'gc.db'}")
    migrate(settings.database_url)
    callbacks = len(gc.callbacks)
    with TestClient(create_app(settings), client=("127.0.0.1", 50000)) as client:  # /metrics: loopback
        gc.collect(0)
        gc.collect(2)
        text = client.get("/metrics").text
        assert 'liveshow_gc_pause_seconds_count{generation="0"}' in text
        full = [line for line in text.splitlines() if line.startswith("liveshow_gc_pause_seconds_count")]
        assert any('generation="2"' in line and float(line.split()[-1]) >= 1 for line in full)
    assert len(gc.callbacks) == callbacks  # a stopped app leaves no callback behind
