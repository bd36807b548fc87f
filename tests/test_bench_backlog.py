"""`liveshow serve` listens with the listen_backlog setting (uvicorn's default of 2048 reset handshakes
when thousands of room sockets joined at once: bench/room.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn

import liveshow.app
from liveshow import cli


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, Any]:
    calls: dict[str, Any] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: calls.update(kwargs))
    monkeypatch.setattr(liveshow.app, "create_app", lambda settings: calls.update(settings=settings))
    monkeypatch.setenv("LIVESHOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LIVESHOW_SECRET_KEY", "test")
    monkeypatch.delenv("LIVESHOW_LISTEN_BACKLOG", raising=False)
    return calls


def test_the_default_backlog_is_above_uvicorns(served: dict[str, Any]) -> None:
    assert cli.main(["serve", "--port", "1"]) == 0
    assert served["backlog"] == 8192 and served["settings"].listen_backlog == 8192


def test_the_backlog_comes_from_the_setting(served: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVESHOW_LISTEN_BACKLOG", "4096")
    assert cli.main(["serve", "--port", "1"]) == 0
    assert served["backlog"] == 4096


def test_the_option_wins_over_the_setting(served: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVESHOW_LISTEN_BACKLOG", "4096")
    assert cli.main(["serve", "--port", "1", "--backlog", "3000"]) == 0
    assert served["backlog"] == 3000


def test_a_backlog_over_the_kernels_cap_is_told(
    served: dict[str, Any], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "somaxconn", lambda: 4096)
    assert cli.main(["serve", "--port", "1"]) == 0
    assert "capped at net.core.somaxconn = 4096" in capsys.readouterr().err
    monkeypatch.setattr(cli, "somaxconn", lambda: 65535)
    assert cli.main(["serve", "--port", "1"]) == 0
    assert "somaxconn" not in capsys.readouterr().err


def test_somaxconn_reads_the_kernel_setting(tmp_path: Path) -> None:
    (tmp_path / "somaxconn").write_text("4096\n")
    assert cli.somaxconn(tmp_path / "somaxconn") == 4096
    assert cli.somaxconn(tmp_path / "absent") is None
