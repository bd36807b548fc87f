"""The short form of the network benchmark (bench/network.py --short): a Chromium publisher (VP8 L1T3),
a reference viewer, a viewer dropping 5 % of its video RTP, and a viewer behind a 600 kbit/s tbf link in
a network namespace, with the relay's features on (and off, where the server has the switches). It
passes only when every target it reports held: the lossy viewer decodes >= 95 % of the reference's
frames, the narrow one keeps >= 10 fps with no freeze over 1 s.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import netns
from bench.network import Seen, Step, held, target
from bench.playback import Playback

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.browser


def test_the_short_network_benchmark_holds_its_targets() -> None:
    why = netns.available()
    if why:
        pytest.skip(why)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "network.py"), "--short"],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    output = done.stdout + done.stderr
    print(output)  # the table, shown by pytest when it fails
    assert done.returncode == 0, output[-6000:]
    assert "verdict: PASS" in done.stdout
    assert "loss 5%" in done.stdout and "600 kbit" in done.stdout


def seen(step: Step, frames: int, freeze: float, seconds: float = 10.0) -> Seen:
    return Seen(step, Playback(frames, seconds, freeze), {})


def test_the_targets_each_step_reports() -> None:
    ref = Step("loss 0%")
    lossy, heavy = Step("loss 5%", loss=0.05), Step("loss 10%", loss=0.10)
    wide, narrow = Step("3000 kbit", link_kbit=3000), Step("600 kbit", link_kbit=600)
    reference = seen(ref, 300, 0.05)
    assert held(ref, reference, reference, 300, 1200) is True
    assert held(ref, seen(ref, 284, 0.05), reference, 300, 1200) is False  # under 95 % of those sent
    assert held(ref, seen(ref, 240, 0.05), reference, 250, 1200) is True  # a slowed publisher: judged apart
    assert held(lossy, seen(lossy, 285, 0.3), reference, 300, 1200) is True  # 95 % of the reference's
    assert held(lossy, seen(lossy, 284, 0.3), reference, 300, 1200) is False
    assert held(heavy, seen(heavy, 10, 5.0), reference, 300, 1200) is None  # reported, no target
    assert target(heavy, 1200) == ""
    assert target(wide, 1200).startswith(">= 95% of the publisher's frames")  # carries the whole stream
    assert held(wide, seen(wide, 290, 0.1), reference, 300, 1200) is True
    assert held(wide, seen(wide, 290, 1.1), reference, 300, 1200) is False  # a freeze over 1 s
    assert held(wide, seen(wide, 150, 0.1), reference, 300, 1200) is False
    assert target(narrow, 1200).startswith(">= 10 fps")
    assert held(narrow, seen(narrow, 100, 1.0), reference, 300, 1200) is True
    assert held(narrow, seen(narrow, 150, 1.2), reference, 300, 1200) is False  # a freeze over 1 s
    assert held(narrow, seen(narrow, 99, 0.2), reference, 300, 1200) is False  # under 10 fps
