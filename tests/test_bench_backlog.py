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


def test_the_room_bench_runs_in_a_namespace_of_its_own_with_the_backlog_allowed() -> None:
    """bench/room.py --netns: the kernel's cap on the backlog is raised inside a private network namespace
    only (this machine's stays as it is), so 10,000 sockets can be measured where somaxconn is 4096."""
    import os
    import subprocess
    import sys

    if os.geteuid() != 0:
        pytest.skip("a network namespace needs root")
    root = Path(__file__).resolve().parent.parent
    outside = Path("/proc/sys/net/core/somaxconn").read_text().strip()
    done = subprocess.run(
        [
            sys.executable,
            str(root / "bench" / "room.py"),
            "--mode",
            "memory",
            "--clients",
            "40",
            "--rate",
            "10",
            "--duration",
            "2",
            "--backlog",
            "12345",
            "--netns",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "listen backlog 12345 (net.core.somaxconn 12345)" in done.stdout
    assert "held: every socket connected and got every message" in done.stdout
    assert Path("/proc/sys/net/core/somaxconn").read_text().strip() == outside
