"""The short form of the fault suite (bench/faults.py --short): two server processes on a private
Redis and a private PostgreSQL, buyers chatting, bidding and claiming, and every kind of fault at least
once (kill -9 of the deciding process, Redis restarted empty, PostgreSQL stopped and crashed, a server
restarted under reconnecting viewers). It passes only when nothing acknowledged was lost, no unit was
sold twice, numbering never went backwards, every command was answered and the recovery targets held.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [pytest.mark.redis, pytest.mark.postgres]


def test_the_short_fault_suite_loses_nothing_acknowledged() -> None:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "faults.py"), "--short"],
        capture_output=True,
        text=True,
        timeout=540,
        cwd=ROOT,
    )
    output = done.stdout + done.stderr
    print(output)  # the counts and recovery times, shown by pytest when it fails
    assert done.returncode == 0, output[-6000:]
    assert "verdict: PASS" in done.stdout
